"""The training panel's ablation study: the study the form describes, its job and its progress.

:class:`TrainingStudyMixin` is one part of :class:`inspector.gui.training_panel.TrainingPanel`;
the study itself is :func:`inspector.core.study.run_study`, run by ``vit-inspector ablate`` in a
child process (:class:`inspector.gui.study_worker.StudyProcess`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Slot

from .study_worker import StudyProcess
from .training_worker import format_eta, user_message


class TrainingStudyMixin:
    """Start and follow the ablation-study job (mixed into the training panel)."""

    def study_spec(self) -> Any:
        """The study the form describes (``inspector.core.study.StudySpec``).

        Raises:
            ValueError: no model checked, an image folder (a study needs synthetic data or a
                Tiny ImageNet folder with masks), or what ``StudySpec`` refuses.
        """
        from inspector.core.study import StudySpec

        data = self.dataset_spec()
        if data.kind == "folder":
            raise ValueError("a study runs on synthetic data or a Tiny ImageNet folder")
        if data.kind == "tiny-imagenet" and not data.path:
            raise ValueError("choose the Tiny ImageNet folder")
        if data.kind == "tiny-imagenet" and not Path(data.path).expanduser().is_dir():
            raise ValueError(f"dataset folder {data.path!r} does not exist or is not a folder")
        presets = self.study_box.presets()
        if not presets:
            raise ValueError("check at least one model for the study")
        synthetic = data.kind == "synthetic"
        return StudySpec(
            data="synthetic" if synthetic else data.path,
            classes=data.classes,
            presets=tuple(presets),
            seeds=tuple(range(self.study_box.seeds_spin.value())),
            epochs=self.epochs_spin.value(),
            jobs=self.study_box.jobs_spin.value(),
            paper_faithful=self.double_softmax_check.isChecked(),
            device=self.device_combo.currentText(),
            train_per_class=data.train_per_class,
            val_per_class=data.val_per_class if synthetic else None,
            test_per_class=data.val_per_class if synthetic else None,
        )

    @Slot()
    def start_study(self) -> bool:
        """Start the ablation study the form describes. Returns False (and shows why) when
        the settings are invalid or a job is already running."""
        if self.is_running():
            return False
        self.show_error("")
        try:
            spec = self.study_spec()
            out = self.out_edit.text().strip()
            if not out:
                raise ValueError("choose an output folder for the study")
        except ValueError as exc:  # AblationError is a ValueError
            self.show_error(user_message(exc))
            return False
        self._reset_curves()
        self._set_plot_mode(study=True)
        self._study_rows, self._study_models = [], []
        self.study_table.hide()
        self.compare_button.hide()
        self.log_view.clear()
        try:
            worker = StudyProcess(spec, Path(out).expanduser(), self)
        except ValueError as exc:
            self.show_error(user_message(exc))
            return False
        worker.progress.connect(self._on_study_progress)
        self._launch(worker)
        return True

    def study_rows(self) -> list[dict[str, Any]]:
        """The rows of the last finished study's report (empty before one finishes)."""
        return [dict(r) for r in self._study_rows]

    @Slot(dict)
    def _on_study_progress(self, info: dict) -> None:
        self.progress.setValue(int(round(1000 * info["fraction"])))
        if info["curves"]:
            self.curves.add_study_point(info)
        where = (
            f"model {info['index']}/{info['total']} {info['preset']} · epoch "
            f"{info['epoch']}/{info['epochs']}"
            if info["preset"]
            else "study"
        )
        self.progress.setFormat(f"{where} · %p% · ETA {format_eta(info['eta_seconds'])}")
        self.status_label.setText(f"{info['message']} · elapsed {format_eta(info['elapsed'])}")

    def study_curves(self) -> dict[tuple[str, int], tuple[list, list, list]]:
        """Per study run: (epochs, training losses, validation accuracies) plotted so far."""
        return self.curves.study_curves()
