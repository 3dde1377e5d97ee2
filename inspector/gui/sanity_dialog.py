"""The Sanity Check dialog: the cascading-randomisation check (Adebayo et al. 2018) of the
current method on the current image, run by the core's ``cascading_sanity`` off the GUI
thread, shown as the core's figure and a per-step table, and saved as the CLI's files."""

from __future__ import annotations

import copy
import dataclasses
import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .sanity_views import FittedFigure, SanityCurves
from .workers import BackgroundRunner

EXPLANATION = (
    "The model's layers are re-initialised one at a time from the top (head, last block, ..., "
    "patch embedding), cumulatively, and the map is recomputed after each step. Spearman's ρ "
    "and SSIM compare it with the trained model's map. A method whose map stays similar "
    "(ρ and SSIM near 1) while the weights it explains are destroyed does not depend on what "
    "the model learnt."
)


class SanityDialog(QDialog):
    """Runs one cascade when shown with :meth:`start`; ``finished_run`` carries the result.

    Signals:
        progressed(done, text): a step of the cascade finished (GUI thread).
        finishedRun(result): the cascade ended (``SanityResult``; ``stopped`` when cancelled).
        failedRun(message): the cascade raised; one line for the user.
    """

    progressed = Signal(int, str)
    finishedRun = Signal(object)
    failedRun = Signal(str)

    def __init__(
        self,
        loaded: Any,
        image: Any,
        settings: Any,
        *,
        checkpoint: Path | None,
        cmap: str,
        model_runner: BackgroundRunner,
        parent: QWidget | None = None,
    ) -> None:
        from ..core.sanity import cascade_layers

        super().__init__(parent)
        self.setWindowTitle("Sanity check: cascading randomisation")
        self.loaded, self.image, self.settings = loaded, image, settings
        self.checkpoint, self.cmap = checkpoint, cmap
        self.result: Any = None
        self._model_runner = model_runner
        self._runner = BackgroundRunner(self)  # the cascade's own thread: captures go on
        self._runner.finished.connect(self._on_done)
        self._runner.failed.connect(self._on_failed)
        self._stop = threading.Event()
        self._copy_id = -1
        self.steps = len(cascade_layers(loaded.model))

        name = image.path.name if image.path is not None else "the image"
        header = QLabel(
            f"<b>{settings.map.method}</b> on <b>{name}</b>: {self.steps} steps, original first"
        )
        header.setWordWrap(True)
        about = QLabel(EXPLANATION)
        about.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, self.steps)
        self.progress.setFormat("%v / %m steps")
        self.status = QLabel("starting…")
        self.status.setWordWrap(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)

        # The figure at the dialog's width (it scrolled sideways at native size and left an
        # empty band under it); the table and the curves of rho and SSIM side by side under it.
        self.figure = FittedFigure()
        self.curves = SanityCurves()
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(
            ["layer randomised (cumulative)", "Spearman ρ", "SSIM"]
        )
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.setHorizontalHeaderLabels(["layer randomised", "Spearman ρ", "SSIM"])
        self.table.setToolTip("Each row: that layer and every one above it re-initialised")
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.save_button = self.buttons.addButton("Save…", QDialogButtonBox.ButtonRole.ActionRole)
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self._save_dialog)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(header)
        layout.addWidget(about)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.figure)
        results = QHBoxLayout()
        results.addWidget(self.table, 1)
        results.addWidget(self.curves, 1)
        layout.addLayout(results, 1)
        layout.addWidget(self.buttons)
        self.progressed.connect(self._on_progress)
        self.resize(820, 660)

    # -- running ---------------------------------------------------------------------------
    def start(self) -> None:
        """Copy the model on the window's model thread (nothing else uses it meanwhile), then
        run the cascade on this dialog's thread, so that the window stays responsive."""
        loaded = self.loaded
        self._model_runner.finished.connect(self._on_copied)
        self._copy_id = self._model_runner.submit(
            lambda: dataclasses.replace(loaded, model=copy.deepcopy(loaded.model)), "sanity-copy"
        )

    def _on_copied(self, request_id: int, result: object) -> None:
        if request_id != self._copy_id:
            return  # another of the window's jobs
        self._model_runner.finished.disconnect(self._on_copied)
        from ..core.sanity import cascading_sanity

        image, settings, stop = self.image, self.settings, self._stop

        def job() -> Any:
            return cascading_sanity(
                result,
                [image],
                settings.map,
                smoothing=settings.smoothing,
                progress=lambda done, text: self.progressed.emit(done, text),  # queued
                stop=stop,
            )

        self._runner.submit(job, "sanity")

    def cancel(self) -> None:
        """Stop before the next step; the steps done are kept and shown."""
        self._stop.set()
        self.status.setText("cancelling after the current step…")

    def _on_progress(self, done: int, text: str) -> None:
        self.progress.setValue(done)
        self.status.setText(f"randomised up to {text}")

    def _on_done(self, _request_id: int, result: object) -> None:
        self.result = result
        self.cancel_button.setEnabled(False)
        rows = result.per_layer()
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            rho = "n/a (constant map)" if r["spearman"] is None else f"{r['spearman']:.3f}"
            for col, text in enumerate([r["layer"], rho, f"{r['ssim']:.3f}"]):
                self.table.setItem(i, col, QTableWidgetItem(text))
        from ..core.sanity import sanity_figure

        self.figure.set_rgb(sanity_figure(result, [self.image.display], cmap=self.cmap))
        self.curves.set_rows(rows)
        last = rows[-1]
        self.status.setText(
            ("cancelled: " if result.stopped else "done: ")
            + f"{len(rows) - 1} of {self.steps - 1} layers randomised; last step ρ "
            + ("n/a" if last["spearman"] is None else f"{last['spearman']:.3f}")
            + f", SSIM {last['ssim']:.3f}"
        )
        self.save_button.setEnabled(True)
        self.finishedRun.emit(result)

    def _on_failed(self, _request_id: int, message: str) -> None:
        self.status.setText(f"the sanity check failed: {message}")
        self.cancel_button.setEnabled(False)
        self.failedRun.emit(message)

    # -- saving ----------------------------------------------------------------------------
    def save_to(self, folder: Path, *, overwrite: bool = False) -> list[Path]:
        """Write sanity.json / .csv / .png into ``folder``, as ``vit-inspector sanity`` does."""
        from ..core.sanity_files import sanity_record, save_sanity

        record = sanity_record(
            self.result,
            self.checkpoint or "",
            [self.image.path] if self.image.path is not None else [],
        )
        return save_sanity(
            folder, self.result, record, [self.image.display], cmap=self.cmap, overwrite=overwrite
        )

    def _save_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save the sanity check into")
        if not folder:
            return
        try:
            written = self.save_to(Path(folder))
        except (OSError, ValueError) as exc:
            from .workers import user_message

            self.status.setText(f"not saved: {user_message(exc)}")
            return
        self.status.setText(f"saved {', '.join(p.name for p in written)} in {folder}")

    def done(self, code: int) -> None:  # closing stops a running cascade
        self._stop.set()
        super().done(code)
