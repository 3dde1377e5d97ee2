"""The training panel: configure a ViT, train it in the background, watch the curves.

The form is :class:`inspector.gui.training_form.TrainingFormMixin`, the ablation study
:class:`inspector.gui.training_study.TrainingStudyMixin`; this module runs the jobs.

Public API (for the main window):

* ``TrainingPanel(parent=None)`` - a self-contained ``QWidget`` (place it in a dock or tab).
* ``finished(str)`` signal - a trained model is ready at this path (``best.pt``); open it.
* ``job_ended(str, str)`` signal - any end of a job: ``(status, message)`` with status
  ``finished`` / ``stopped`` / ``diverged`` / ``failed``; emitted after the process has ended.
* ``running_changed(bool)`` signal.
* ``epoch_reported(dict)`` signal - a training job finished an epoch (its ``history.json`` row).
* ``study_finished(list)`` signal - an ablation study finished; its models (``last.pt`` of the
  first seed, one per preset) are ready for the compare view.
* ``start_study()`` - the study job: the checked models of the "Ablation study" box trained,
  evaluated and reported by :func:`inspector.core.study.run_study` with the paper's
  hyper-parameters (epochs, data, device, double softmax and output folder from the form);
  ``study_rows()`` and ``study_table`` show the report's table when it is done.
* ``start()`` / ``resume()`` / ``cancel()`` - what the buttons do; ``is_running()``. Resume is
  offered (``resume_button``) when the output folder holds a run that can continue.
* ``request_stop_and_wait(timeout_ms) -> bool`` - for window close: asks the job's process to
  stop (SIGTERM) and waits for it; it stops between steps, so ``last.pt`` stays the last
  completed epoch's (it is written atomically). True when it ended in time.

Jobs run as ``vit-inspector train`` / ``ablate`` child processes with ``--events json``
(:mod:`inspector.gui.cli_process`): the window's event loop never shares the GIL with them.
The default output folder is a fresh ``runs/<preset>-<date>-<time>``.
* ``model_config()`` / ``train_config()`` / ``dataset_spec()`` - the settings as core objects.

All numbers shown come from :mod:`inspector.core.train` events and ``history.json`` rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QBoxLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from .study_box import StudyBox, StudyTable
from .study_worker import StudyProcess
from .training_curves import TrainingCurves
from .training_form import TrainingFormMixin
from .training_study import TrainingStudyMixin
from .training_worker import TrainingJob, TrainingProcess, format_eta, user_message


class TrainingPanel(TrainingFormMixin, TrainingStudyMixin, QWidget):
    """Configure and run a training job, with live curves, progress, ETA and a log."""

    finished = Signal(str)
    epoch_reported = Signal(dict)  # one epoch of a training job: its history.json row
    job_ended = Signal(str, str)
    running_changed = Signal(bool)
    study_finished = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._job: TrainingProcess | StudyProcess | None = None
        self._study_rows: list[dict[str, Any]] = []
        self._study_models: list[str] = []
        self._stopping = False
        self._result: tuple[str, str, str] | None = None
        self._auto_out = True  # the output field follows the preset until the user edits it
        self._history: list[dict[str, Any]] = []
        self._filling_preset = False
        self._build()
        self.apply_preset("baseline")
        self._refresh_default_out()
        self._set_running(False)

    # ------------------------------------------------------------------ construction
    def _build(self) -> None:
        # The form and the curves scroll (vertically only: the content follows the dock's
        # width); Start / Resume / Cancel, the progress and the messages sit below the scroll
        # area, so they are visible at any dock height. Wide dock: form beside the curves;
        # narrow: the curves below the form (``resizeEvent``).
        root = QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        content = QWidget()
        self.columns = QBoxLayout(QBoxLayout.Direction.TopToBottom, content)
        self.columns.setContentsMargins(0, 0, 0, 0)
        self.scroll.setWidget(content)
        root.addWidget(self.scroll, 1)
        self.form_widget = QWidget()
        left = QVBoxLayout(self.form_widget)
        left.setContentsMargins(0, 0, 0, 0)
        self.columns.addWidget(self.form_widget, 0)

        self._build_form_boxes(left)

        self.study_box = StudyBox()
        self.study_box.run_button.clicked.connect(self.start_study)
        left.addWidget(self.study_box)

        left.addStretch(1)

        self.results_widget = QWidget()
        right = QVBoxLayout(self.results_widget)
        right.setContentsMargins(0, 0, 0, 0)
        self.columns.addWidget(self.results_widget, 1)
        self.curves = TrainingCurves()
        # The names the tests and the benchmark read.
        self.loss_plot, self.acc_plot = self.curves.loss_plot, self.curves.acc_plot
        self.train_loss_curve, self.val_loss_curve = self.curves.train_loss, self.curves.val_loss
        self.train_acc_curve, self.val_acc_curve = self.curves.train_acc, self.curves.val_acc
        self.step_loss_curve = self.curves.step_loss
        right.addWidget(self.loss_plot, 2)
        right.addWidget(self.acc_plot, 2)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        self.log_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.log_view.setPlaceholderText("Training log (cleared for each new job)")
        self.log_view.setMinimumHeight(90)
        right.addWidget(self.log_view, 1)
        self.study_table = StudyTable()
        self.study_table.setToolTip(
            "The study's report (mean ± std over seeds); hover a cell for the paper's value"
        )
        self.study_table.hide()
        right.addWidget(self.study_table, 2)
        self.compare_button = QPushButton("Open Study Models in Compare View")
        self.compare_button.clicked.connect(
            lambda: self.study_finished.emit(list(self._study_models))
        )
        self.compare_button.hide()
        right.addWidget(self.compare_button)
        root.addWidget(self._build_footer())
        self._on_dataset_kind()

    def _build_footer(self) -> QWidget:
        """Resume offer, Start / Resume / Cancel, progress, status and error: never scrolled."""
        footer = QWidget()
        lay = QVBoxLayout(footer)
        lay.setContentsMargins(0, 4, 0, 0)
        self.resume_label = QLabel()
        self.resume_label.setWordWrap(True)
        self.resume_label.hide()
        lay.addWidget(self.resume_label)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setShortcut("Ctrl+Return")
        self.start_button.setToolTip("Train a new model into the output folder (Ctrl+Return)")
        self.start_button.clicked.connect(self.start)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip(
            "Continue the run in the output folder from its last completed epoch, up to the "
            "form's Epochs (same model, settings and data)"
        )
        self.resume_button.clicked.connect(self.resume)
        self.resume_button.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip(
            "Stop after the current step; the last completed epoch's checkpoint is kept"
        )
        self.cancel_button.clicked.connect(self.cancel)
        for b in (self.start_button, self.resume_button, self.cancel_button):
            buttons.addWidget(b)
        lay.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        self.progress.setMinimumWidth(60)
        lay.addWidget(self.progress)
        self.status_label = QLabel("No training job.")
        self.status_label.setWordWrap(True)  # long messages wrap instead of being clipped
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.status_label)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c62828;")
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()
        lay.addWidget(self.error_label)
        return footer

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt name
        # Side by side whenever the curves get a useful width (260 px) beside the form, so a
        # running job's curves are in view without scrolling; else the curves go below it.
        wide = event.size().width() >= self.form_widget.minimumSizeHint().width() + 280
        direction = QBoxLayout.Direction.LeftToRight if wide else QBoxLayout.Direction.TopToBottom
        if self.columns.direction() != direction:
            self.columns.setDirection(direction)
        super().resizeEvent(event)

    # ------------------------------------------------------------------ configuration
    # ------------------------------------------------------------------ running
    def is_running(self) -> bool:
        return self._job is not None

    def last_result(self) -> tuple[str, str, str] | None:
        """``(status, message, model_path)`` of the last job that ended, or None."""
        return self._result

    def history(self) -> list[dict[str, Any]]:
        """The per-epoch rows received so far (the same rows the core writes)."""
        return [dict(r) for r in self._history]

    def show_error(self, message: str) -> None:
        """Show a one-line problem in the panel (and the log)."""
        self.error_label.setText(message)
        self.error_label.setVisible(bool(message))
        if message:
            self._append_log(f"error: {message}")

    @Slot()
    def start(self) -> bool:
        """Start a job with the form's settings. Returns False (and shows why) when the
        settings are invalid or a job is already running."""
        return self._start_training(resume=False)

    @Slot()
    def resume(self) -> bool:
        """Continue the run in the output folder (``vit-inspector train --resume``)."""
        return self._start_training(resume=True)

    def _start_training(self, *, resume: bool) -> bool:
        if self.is_running():
            return False
        self.show_error("")
        if not resume:
            self._refresh_default_out()  # a fresh runs/<preset>-<time> for each new job
        try:
            model_cfg = self.model_config()
            train_cfg = self.train_config()
            spec = self.dataset_spec()
            out = self.out_edit.text().strip()
            if not out:
                raise ValueError("choose an output folder for the checkpoints")
            if spec.kind != "synthetic" and not spec.path:
                raise ValueError("choose the dataset folder")
        except ValueError as exc:  # ConfigError is a ValueError
            self.show_error(user_message(exc))
            return False
        job = TrainingJob(
            model_cfg=model_cfg,
            train_cfg=train_cfg,
            dataset=spec,
            out_dir=Path(out).expanduser(),
            overwrite=self.overwrite_check.isChecked() and not resume,
            resume=resume,
            provenance={"preset": self.preset_combo.currentText(), "source": "vit-inspector gui"},
        )
        self._reset_curves()
        self._set_plot_mode(study=False)
        self.log_view.clear()  # a new job's log only
        worker = TrainingProcess(job, self)
        worker.step.connect(self._on_step)
        worker.epoch.connect(self._on_epoch)
        self._append_log(
            f"starting: {self.preset_combo.currentText()} "
            f"({model_cfg.depth} blocks, {model_cfg.num_heads} heads, hidden "
            f"{model_cfg.hidden_size}, {model_cfg.pos_encoding} positions), "
            f"{train_cfg.epochs} epochs, batch {train_cfg.batch_size}, "
            f"lr {train_cfg.lr:g} -> {job.out_dir}"
        )
        self._launch(worker)
        return True

    def _launch(self, job: TrainingProcess | StudyProcess) -> None:
        self._result = None
        self._stopping = False
        self._job = job
        job.log.connect(self._append_log)
        job.done.connect(lambda status, message, extra, j=job: self._on_job_done(j, status, extra))
        # Starting must not scroll the form (disabling the focused field moves the focus).
        bar = self.scroll.verticalScrollBar()
        position = bar.value()
        self._set_running(True)
        bar.setValue(position)
        self.progress.setValue(0)
        self.progress.setFormat("starting…")
        self.status_label.setText("Starting the job in its own process…")
        job.start()

    @Slot()
    def cancel(self) -> None:
        """Ask the job to stop before its next step (returns at once)."""
        if self.is_running() and not self._stopping:
            self._stopping = True
            self._job.stop()  # SIGTERM: the child finishes the step, keeps its files, exits
            self.status_label.setText("Stopping after the current step…")
            self._append_log("cancel requested")
            self.cancel_button.setEnabled(False)

    def request_stop_and_wait(self, timeout_ms: int = 10_000) -> bool:
        """Stop the job and wait for its process (window close). True when it ended by
        itself within ``timeout_ms``; otherwise it is killed (its files stay those of the last
        completed epoch: they are written atomically) and False is returned."""
        job = self._job
        if job is None:
            return True
        self._stopping = True
        job.stop()
        ended = job.wait(timeout_ms)  # delivers the last events and _on_job_done
        if not ended:
            job.kill()
            job.wait(5000)
        return ended

    @Slot(str)
    def _append_log(self, line: str) -> None:
        self.log_view.appendPlainText(line)

    @Slot(dict)
    def _on_step(self, info: dict) -> None:
        total = max(1, info["total_steps"])
        self.progress.setValue(int(round(1000 * info["global_step"] / total)))
        # Short enough for a narrow bar; the step count is in the tooltip.
        self.progress.setFormat(
            f"epoch {info['epoch']}/{info['epochs']} · %p% · ETA {format_eta(info['eta_seconds'])}"
        )
        self.progress.setToolTip(
            f"epoch {info['epoch']}/{info['epochs']}, step {info['step']}/"
            f"{info['steps_per_epoch']} ({info['global_step']}/{info['total_steps']} in all)"
        )
        self.status_label.setText(
            f"loss {info['loss']:.4f} · lr {info['lr']:.2e} · "
            f"{info['images_per_second']:.0f} img/s · elapsed {format_eta(info['elapsed'])}"
        )
        self.curves.add_step(info)

    @Slot(dict)
    def _on_epoch(self, info: dict) -> None:
        row = info["metrics"]
        self._history.append(dict(row))
        self.curves.show_history(self._history)
        best = " (best so far)" if info["is_best"] else ""
        self._append_log(
            f"epoch {row['epoch']}/{info['epochs']}: train loss {row['train_loss']:.4f} "
            f"acc {row['train_acc']:.3f} · val loss {row['val_loss']:.4f} "
            f"acc {row['val_accuracy']:.3f} F1 {_fmt(row.get('val_f1'))} "
            f"AUC {_fmt(row.get('val_roc_auc'))} · {row.get('seconds', float('nan')):.1f} s"
            f"{best}"
        )
        self.epoch_reported.emit(dict(row))

    def _on_job_done(self, job: TrainingProcess | StudyProcess, status: str, extra: Any) -> None:
        if job is not self._job:
            return  # a late signal of an old job
        self._job = None
        status, message, extra = job.result or (status, "the job ended", extra)
        path = extra if isinstance(extra, str) else ""
        self._result = (status, message, path)
        job.deleteLater()
        self._set_running(False)
        self.curves.job_ended(status)
        if status == "failed":
            self.show_error(message)
            self.progress.setFormat("failed")
        else:
            self._append_log(f"{status}: {message}")
            self.progress.setFormat(status)
            if status == "finished":
                self.progress.setValue(1000)
        self.status_label.setText(f"{status}: {message}")
        self.job_ended.emit(status, message)
        self.refresh_resume()
        if isinstance(job, StudyProcess) and status == "finished":
            self._study_rows = list(extra["rows"])
            self._study_models = list(extra["models"])
            self.study_table.show_rows(self._study_rows)
            self.study_table.show()
            self.compare_button.setVisible(bool(self._study_models))
            self._append_log(f"report: {extra['report']} ({extra['wall_seconds']:.0f} s)")
            self.study_finished.emit(list(self._study_models))
        elif status == "finished" and path:
            self.finished.emit(path)

    def _set_running(self, running: bool) -> None:
        self.cancel_button.setEnabled(running)
        if running and self.focusWidget() is not None:
            self.cancel_button.setFocus()  # not the next form field: no scroll, no jump
        self.start_button.setEnabled(not running)
        if running:
            self.resume_button.hide()
            self.resume_label.hide()
        for w in (
            self.preset_combo,
            self.pos_combo,
            self.depth_spin,
            self.heads_spin,
            self.hidden_spin,
            self.residual_check,
            self.layernorm_check,
            self.double_softmax_check,
            self.epochs_spin,
            self.batch_spin,
            self.lr_spin,
            self.wd_spin,
            self.seed_spin,
            self.device_combo,
            self.dataset_combo,
            self.out_edit,
            self.out_browse,
            self.overwrite_check,
        ):
            w.setEnabled(not running)
        self.study_box.set_enabled_for(running)
        self._on_dataset_kind()
        self.running_changed.emit(running)

    def _set_plot_mode(self, study: bool) -> None:
        self.curves.set_mode(study)

    def _reset_curves(self) -> None:
        self._history = []
        self.curves.reset()

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt name
        # Standalone use: never leave a process running behind a destroyed widget.
        self.request_stop_and_wait(30_000)
        super().closeEvent(event)


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"
