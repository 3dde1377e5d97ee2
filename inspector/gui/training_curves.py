"""The training panel's live curves: loss and accuracy per epoch, the batch loss, and one line
per run of a study. Only plotting: every number comes from the job's events."""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QLabel, QSizePolicy

from .attention_grid import BACKGROUND

EMPTY_HINT = "No run yet: choose the model and the data,\nthen press Start"


class _CentredLabel(QObject):
    """Keeps a label over the whole of its parent plot as the plot resizes."""

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Resize:
            for label in obj.findChildren(QLabel, "emptyHint"):
                label.setGeometry(obj.rect())
        return False


class TrainingCurves:
    """Two plots (``loss_plot``, ``acc_plot``) and their curves; the panel lays them out."""

    def __init__(self) -> None:
        self.loss_plot = pg.PlotWidget(title="Loss")
        self.loss_legend = self.loss_plot.addLegend(offset=(-10, 10))
        self.loss_plot.setLabel("bottom", "epoch")
        self.acc_plot = pg.PlotWidget(title="Accuracy")
        self.acc_legend = self.acc_plot.addLegend(offset=(-10, -10))
        self.acc_plot.setLabel("bottom", "epoch")
        self.acc_plot.setYRange(0.0, 1.0)
        self._resizer = _CentredLabel()
        self.hints: list[QLabel] = []
        for plot in (self.loss_plot, self.acc_plot):
            # Small minimum: the plots follow the dock's width instead of widening it.
            plot.setMinimumSize(160, 180)
            plot.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
            plot.setBackground(BACKGROUND)  # the grid's and the entropy plot's, not black
            # Empty axes said nothing before the first run: a line says what fills them.
            hint = QLabel(EMPTY_HINT, plot)
            hint.setObjectName("emptyHint")
            hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
            hint.setWordWrap(True)
            hint.setStyleSheet("color: #9aa0a6; background: transparent;")
            hint.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            plot.installEventFilter(self._resizer)
            self.hints.append(hint)
        sym = {"symbol": "o", "symbolSize": 5}
        self.train_loss = self.loss_plot.plot(
            name="train", pen=pg.mkPen("#1f77b4", width=2), symbolBrush="#1f77b4", **sym
        )
        self.val_loss = self.loss_plot.plot(
            name="validation", pen=pg.mkPen("#ff7f0e", width=2), symbolBrush="#ff7f0e", **sym
        )
        self.step_loss = self.loss_plot.plot(
            name="batch", pen=pg.mkPen((120, 120, 120, 110), width=1)
        )
        self.train_acc = self.acc_plot.plot(
            name="train", pen=pg.mkPen("#1f77b4", width=2), symbolBrush="#1f77b4", **sym
        )
        self.val_acc = self.acc_plot.plot(
            name="validation", pen=pg.mkPen("#ff7f0e", width=2), symbolBrush="#ff7f0e", **sym
        )
        self._step_x: list[float] = []
        self._step_y: list[float] = []
        # (preset, seed) -> (epochs, losses, accuracies, loss curve, accuracy curve)
        self._study: dict[tuple[str, int], tuple] = {}

    def _show_hint(self, empty: bool, text: str | None = None) -> None:
        for hint in self.hints:
            if text is not None:
                hint.setText(text)
            if hint.isHidden() == empty:
                hint.setVisible(empty)

    def step_count(self) -> int:
        """Batch-loss points drawn in this job."""
        return len(self._step_x)

    def add_step(self, info: dict[str, Any]) -> None:
        # The batch loss on the epoch axis: epoch e step s sits at e - 1 + s / steps.
        self._step_x.append(info["epoch"] - 1 + info["step"] / max(1, info["steps_per_epoch"]))
        self._step_y.append(info["loss"])
        self.step_loss.setData(self._step_x, self._step_y)
        self._show_hint(False)

    def show_history(self, history: list[dict[str, Any]]) -> None:
        """The per-epoch curves from the history rows so far."""
        epochs = [r["epoch"] for r in history]
        self.train_loss.setData(epochs, [r["train_loss"] for r in history])
        self.val_loss.setData(epochs, [r["val_loss"] for r in history])
        self.train_acc.setData(epochs, [r["train_acc"] for r in history])
        self.val_acc.setData(epochs, [r["val_accuracy"] for r in history])
        self._show_hint(not history and not self._step_x)

    def add_study_point(self, info: dict[str, Any]) -> None:
        """One epoch of one study run: its training loss and validation accuracy join that
        run's curves (one colour per run, in the study's order)."""
        key = (info["preset"], info["seed"])
        if key not in self._study:
            pen = pg.mkPen(pg.intColor(info["index"] - 1, hues=max(info["total"], 2)), width=1.5)
            loss_curve, acc_curve = self.loss_plot.plot(pen=pen), self.acc_plot.plot(pen=pen)
            self._study[key] = ([], [], [], loss_curve, acc_curve)
        epochs, losses, accs, loss_curve, acc_curve = self._study[key]
        epochs.append(info["epoch"])
        losses.append(info["curves"].get("train_loss", float("nan")))
        accs.append(info["curves"].get("val_accuracy", float("nan")))
        loss_curve.setData(epochs, losses)
        acc_curve.setData(epochs, accs)
        acc_curve.setToolTip(f"{info['preset']} seed {info['seed']}")
        self._show_hint(False)

    def study_curves(self) -> dict[tuple[str, int], tuple[list, list, list]]:
        """Per study run: (epochs, training losses, validation accuracies) plotted so far."""
        return {k: (list(v[0]), list(v[1]), list(v[2])) for k, v in self._study.items()}

    def set_mode(self, study: bool) -> None:
        """A study draws one line per run (training loss, validation accuracy); a single job
        draws train / validation / batch curves with their legend."""
        self.loss_plot.setTitle("Training loss, one line per model" if study else "Loss")
        self.acc_plot.setTitle("Validation accuracy, one line per model" if study else "Accuracy")
        self.loss_legend.setVisible(not study)
        self.acc_legend.setVisible(not study)

    def job_ended(self, status: str) -> None:
        """A job that ended before its first batch leaves no curve: say so, not "waiting"."""
        if not self._step_x and not self._study and not any(h.isHidden() for h in self.hints):
            self._show_hint(True, f"The job {status} before its first batch")

    def reset(self) -> None:
        for *_, loss_curve, acc_curve in self._study.values():
            self.loss_plot.removeItem(loss_curve)
            self.acc_plot.removeItem(acc_curve)
        self._study = {}
        self._step_x, self._step_y = [], []
        for curve in (self.train_loss, self.val_loss, self.step_loss, self.train_acc, self.val_acc):
            curve.setData([], [])
        self._show_hint(True, "Waiting for the first batch…")  # a job is starting
