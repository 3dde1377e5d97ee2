"""The training panel's form: the model, training and data settings, and what they mean.

:class:`TrainingFormMixin` is one part of :class:`inspector.gui.training_panel.TrainingPanel`:
it builds the three group boxes (model, training, data and output), turns them into the core's
``ViTConfig``, ``TrainConfig`` and ``DatasetSpec``, follows the presets, proposes the default
output folder under ``runs/`` and offers Resume when that folder holds a resumable run. The panel
calls ``_build_form_boxes`` while it builds itself and owns the footer widgets
(``resume_label``, ``resume_button``) that ``refresh_resume`` shows.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QTimer, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from inspector.core.config import (
    POS_ENCODINGS,
    PRESETS,
    ConfigError,
    TrainConfig,
    ViTConfig,
    preset,
)

from . import settings_store
from .layout import row
from .training_worker import DatasetSpec

CUSTOM = "custom"


DATASET_KINDS = (
    ("synthetic", "Synthetic shapes"),
    ("tiny-imagenet", "Tiny ImageNet folder"),
    ("folder", "Image folder (one sub-folder per class)"),
)


# The ablation switches a preset sets (MISSION.md section 1); compared to name the preset.
_SWITCHES = ("pos_encoding", "depth", "num_heads", "hidden_size", "residual", "layernorm")


class TrainingFormMixin:
    """The settings form of the training panel (a QWidget)."""

    def _build_form_boxes(self, left: QVBoxLayout) -> None:
        model_box = QGroupBox("Model (ViT)")
        form = _form(model_box)
        self.preset_combo = QComboBox()
        self.preset_combo.addItems([*PRESETS, CUSTOM])
        self.preset_combo.setToolTip(
            "The paper's baseline and its one-change ablations; "
            "choosing one fills every switch below"
        )
        self.preset_combo.currentTextChanged.connect(self._on_preset_chosen)
        form.addRow("Preset", self.preset_combo)
        self.pos_combo = QComboBox()
        self.pos_combo.addItems(list(POS_ENCODINGS))
        form.addRow("Position encoding", self.pos_combo)
        self.depth_spin = _spin(1, 64, "Number of transformer blocks")
        form.addRow("Blocks (depth)", self.depth_spin)
        self.heads_spin = _spin(1, 64, "Attention heads per block")
        form.addRow("Heads", self.heads_spin)
        self.hidden_spin = _spin(1, 4096, "Hidden size (must be divisible by the heads)")
        form.addRow("Hidden size", self.hidden_spin)
        self.residual_check = QCheckBox("Residual connections")
        self.layernorm_check = QCheckBox("LayerNorm")
        form.addRow(self.residual_check)
        form.addRow(self.layernorm_check)
        self.double_softmax_check = QCheckBox("Paper-faithful double softmax")
        self.double_softmax_check.setToolTip(
            "Softmax inside the model, then cross-entropy on the probabilities, as the "
            "authors' code did"
        )
        form.addRow(self.double_softmax_check)
        for w in (self.pos_combo,):
            w.currentTextChanged.connect(self._on_switch_changed)
        for w in (self.depth_spin, self.heads_spin, self.hidden_spin):
            w.valueChanged.connect(self._on_switch_changed)
        for w in (self.residual_check, self.layernorm_check):
            w.toggled.connect(self._on_switch_changed)
        left.addWidget(model_box)

        defaults = TrainConfig()
        train_box = QGroupBox("Training")
        tform = _form(train_box)
        self.epochs_spin = _spin(1, 100_000, "Epochs")
        self.epochs_spin.setValue(defaults.epochs)
        tform.addRow("Epochs", self.epochs_spin)
        self.epochs_spin.valueChanged.connect(lambda _v: self._resume_timer.start())
        self.batch_spin = _spin(1, 65_536, "Batch size")
        self.batch_spin.setValue(defaults.batch_size)
        tform.addRow("Batch size", self.batch_spin)
        self.lr_spin = _dspin(
            1e-6, 10.0, 6, defaults.lr, "Peak learning rate (warm-up, then linear decay)"
        )
        tform.addRow("Learning rate", self.lr_spin)
        self.wd_spin = _dspin(0.0, 10.0, 4, defaults.weight_decay, "Weight decay")
        tform.addRow("Weight decay", self.wd_spin)
        self.seed_spin = _spin(0, 2**31 - 1, "Seed for the model, the batches and the data")
        tform.addRow("Seed", self.seed_spin)
        self.device_combo = QComboBox()
        self.device_combo.addItems(["auto", "cpu", "cuda"])
        tform.addRow("Device", self.device_combo)
        left.addWidget(train_box)

        data_box = QGroupBox("Data and output")
        dform = _form(data_box)
        self.dataset_combo = QComboBox()
        for key, label in DATASET_KINDS:
            self.dataset_combo.addItem(label, key)
        self.dataset_combo.currentIndexChanged.connect(self._on_dataset_kind)
        dform.addRow("Dataset", self.dataset_combo)
        self.data_path_edit = QLineEdit()
        self.data_path_edit.setPlaceholderText("dataset folder")
        self.data_browse = QPushButton("Browse…")
        self.data_browse.clicked.connect(self._browse_data)
        dform.addRow("Folder", row(self.data_path_edit, self.data_browse))
        self.classes_spin = _spin(2, 200, "Number of classes to use")
        self.classes_spin.setValue(10)
        dform.addRow("Classes", self.classes_spin)
        # 0 shows as "default": the loader's own number (synthetic 500 training / 50
        # validation images per class; Tiny ImageNet all 500 / 50).
        self.train_per_class_spin = _spin(
            0,
            100_000,
            "How many training images of each class to use; 'default' (0) uses the loader's "
            "own number: 500 per class for synthetic shapes and Tiny ImageNet",
        )
        self.train_per_class_spin.setSpecialValueText("default (500)")
        dform.addRow("Training images per class", self.train_per_class_spin)
        self.val_per_class_spin = _spin(
            0,
            100_000,
            "Synthetic shapes only: validation (and test) images per class; 'default' (0) is 50",
        )
        self.val_per_class_spin.setSpecialValueText("default (50)")
        dform.addRow("Validation images per class", self.val_per_class_spin)
        self._resume_timer = QTimer(self)
        self._resume_timer.setSingleShot(True)
        self._resume_timer.setInterval(150)  # coalesce typing; the check reads history.json
        self._resume_timer.timeout.connect(self.refresh_resume)
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("output folder for last.pt, best.pt, history.json")
        self.out_edit.textEdited.connect(self._on_out_edited)
        self.out_edit.textChanged.connect(lambda _t: self._resume_timer.start())
        self.out_browse = QPushButton("Browse…")
        self.out_browse.clicked.connect(self._browse_out)
        dform.addRow("Output", row(self.out_edit, self.out_browse))
        self.overwrite_check = QCheckBox("Replace a run already in the output folder")
        dform.addRow(self.overwrite_check)
        left.addWidget(data_box)

    # ------------------------------------------------------------------ configuration
    def apply_preset(self, name: str) -> None:
        """Fill every ablation switch from the paper preset ``name`` (or leave as is for
        ``custom``)."""
        if name == CUSTOM:
            self.preset_combo.setCurrentText(CUSTOM)
            return
        cfg = preset(name)
        self._filling_preset = True
        try:
            self.preset_combo.setCurrentText(name)
            self.pos_combo.setCurrentText(cfg.pos_encoding)
            self.depth_spin.setValue(cfg.depth)
            self.heads_spin.setValue(cfg.num_heads)
            self.hidden_spin.setValue(cfg.hidden_size)
            self.residual_check.setChecked(cfg.residual)
            self.layernorm_check.setChecked(cfg.layernorm)
        finally:
            self._filling_preset = False

    def model_config(self) -> ViTConfig:
        """The architecture as set in the form (num_classes/image_size follow the data later).

        Raises:
            ConfigError: inconsistent values (e.g. hidden size not divisible by the heads).
        """
        return ViTConfig().replace(
            pos_encoding=self.pos_combo.currentText(),
            depth=self.depth_spin.value(),
            num_heads=self.heads_spin.value(),
            hidden_size=self.hidden_spin.value(),
            residual=self.residual_check.isChecked(),
            layernorm=self.layernorm_check.isChecked(),
            output_softmax=self.double_softmax_check.isChecked(),
        )

    def train_config(self) -> TrainConfig:
        """The training settings as set in the form (raises ``ConfigError`` when invalid)."""
        return TrainConfig(
            epochs=self.epochs_spin.value(),
            batch_size=self.batch_spin.value(),
            lr=self.lr_spin.value(),
            weight_decay=self.wd_spin.value(),
            seed=self.seed_spin.value(),
            device=self.device_combo.currentText(),
        )

    def dataset_spec(self) -> DatasetSpec:
        tpc = self.train_per_class_spin.value() or None
        vpc = self.val_per_class_spin.value() or None
        return DatasetSpec(
            kind=self.dataset_combo.currentData(),
            path=self.data_path_edit.text().strip(),
            classes=self.classes_spin.value(),
            seed=self.seed_spin.value(),
            train_per_class=tpc,
            val_per_class=vpc,
        )

    def set_dataset(self, kind: str, path: str | Path = "") -> None:
        """Choose the dataset kind (``synthetic``, ``tiny-imagenet``, ``folder``) and folder."""
        index = self.dataset_combo.findData(kind)
        if index < 0:
            raise ValueError(f"unknown dataset kind {kind!r}")
        self.dataset_combo.setCurrentIndex(index)
        self.data_path_edit.setText(str(path))

    def set_output_dir(self, path: str | Path) -> None:
        self._auto_out = False
        self.out_edit.setText(str(path))

    def default_output_dir(self) -> Path:
        """``runs/<preset>-<date>-<time>`` (a fresh folder), so the first Start just works."""
        from inspector import paths

        stem = f"{self.preset_combo.currentText()}-{time.strftime('%Y%m%d-%H%M%S')}"
        folder, n = paths.RUNS / stem, 2
        while folder.exists():
            folder, n = paths.RUNS / f"{stem}-{n}", n + 1
        return folder

    def _refresh_default_out(self) -> None:
        if self._auto_out and not self.is_running():
            self.out_edit.setText(str(self.default_output_dir()))

    @Slot(str)
    def _on_out_edited(self, _text: str) -> None:
        self._auto_out = False  # the user's folder: never replaced by a default again

    @Slot()
    def refresh_resume(self) -> None:
        """Offer Resume when the output folder holds a run that can continue (reads only file
        names and ``history.json``: :func:`inspector.core.run_folder.inspect_run_folder`)."""
        from inspector.core.run_folder import inspect_run_folder

        text = self.out_edit.text().strip()
        info = inspect_run_folder(text) if text and not self.is_running() else None
        self.resume_button.setVisible(bool(info and info.resumable))
        self.resume_label.setVisible(info is not None)
        if info is None:
            return
        epochs = self.epochs_spin.value()
        if not info.resumable:
            self.resume_label.setText(
                f"This folder holds {', '.join(info.files)} but nothing to resume from: "
                "check 'Replace' to start again, or choose another folder."
            )
        elif info.epochs_done >= epochs:
            self.resume_label.setText(
                f"This folder holds a finished run ({info.epochs_done} epochs). Raise Epochs "
                f"above {info.epochs_done} and Resume to train it further."
            )
        else:
            self.resume_label.setText(
                f"This folder holds a run stopped after {info.epochs_done} of its epochs: "
                f"Resume continues it to {epochs} epochs."
            )
        self.resume_button.setEnabled(info.resumable and info.epochs_done < epochs)

    @Slot(str)
    def _on_preset_chosen(self, name: str) -> None:
        self._refresh_default_out()
        if not self._filling_preset and name != CUSTOM:
            self.apply_preset(name)

    @Slot()
    def _on_switch_changed(self, *_: object) -> None:
        if self._filling_preset:
            return
        # Name the preset the switches now match, or "custom".
        try:
            current = self.model_config()
        except ConfigError:
            current = None
        match = CUSTOM
        if current is not None:
            for name in PRESETS:
                ref = preset(name)
                if all(getattr(ref, k) == getattr(current, k) for k in _SWITCHES):
                    match = name
                    break
        self._filling_preset = True
        try:
            self.preset_combo.setCurrentText(match)
        finally:
            self._filling_preset = False

    @Slot()
    def _on_dataset_kind(self, *_: object) -> None:
        kind = self.dataset_combo.currentData()
        idle = not self.is_running()
        is_folder = kind != "synthetic"
        self.data_path_edit.setEnabled(is_folder and idle)
        self.data_browse.setEnabled(is_folder and idle)
        self.val_per_class_spin.setEnabled(not is_folder and idle)
        # An image folder uses all its class sub-folders and the loader's own split.
        self.classes_spin.setEnabled(kind != "folder" and idle)
        self.train_per_class_spin.setEnabled(kind != "folder" and idle)
        from inspector.core.data.synthetic import SYNTHETIC_CLASSES

        self.classes_spin.setMaximum(len(SYNTHETIC_CLASSES) if kind == "synthetic" else 200)

    def _browse_data(self) -> None:
        settings = settings_store.store()
        start = self.data_path_edit.text() or str(settings.value("training/data_dir", ""))
        folder = QFileDialog.getExistingDirectory(self, "Dataset folder", start)
        if folder:
            self.data_path_edit.setText(folder)
            settings.setValue("training/data_dir", folder)

    def _browse_out(self) -> None:
        settings = settings_store.store()
        start = self.out_edit.text() or str(settings.value("training/out_dir", ""))
        folder = QFileDialog.getExistingDirectory(self, "Output folder", start)
        if folder:
            self.out_edit.setText(folder)
            settings.setValue("training/out_dir", folder)


def _form(box: QWidget) -> QFormLayout:
    """A form whose long rows wrap (label above its field) in a narrow dock."""
    form = QFormLayout(box)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    return form


def _spin(lo: int, hi: int, tip: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(lo, hi)
    spin.setToolTip(tip)
    return spin


def _dspin(lo: float, hi: float, decimals: int, value: float, tip: str) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setDecimals(decimals)
    spin.setRange(lo, hi)
    spin.setSingleStep(10 ** -(decimals - 2) if decimals > 2 else 0.1)
    spin.setValue(value)
    spin.setToolTip(tip)
    return spin
