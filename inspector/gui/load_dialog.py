"""The checkpoint load dialog: what the file cannot tell (heads, class names, normalisation,
resize policy, an input size to resample the position table for, the library architecture --
the CLI's ``--arch NAME``).

It only collects answers; :mod:`inspector.core.load_options` gives them their meaning. Opened
from File ▸ Open Checkpoint with Options…, and by the main window when a file cannot be opened
because its number of heads is unknown (then pre-filled, with the reason shown).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from inspector.core.load_options import LoadOptions, LoadOptionsError, read_class_names

__all__ = ["LoadOptionsDialog"]

NORMALISATION_ITEMS = [
    ("auto", "Family default"),
    ("imagenet", "ImageNet mean/std (0.485…, 0.229…)"),
    ("half", "0.5 / 0.5 (inputs in [-1, 1])"),
    ("none", "None: mean 0, std 1 (inputs in [0, 1])"),
]
POLICY_ITEMS = [
    ("auto", "Family default"),
    ("resize", "Resize the whole image"),
    ("resize_crop", "Resize the short side, crop the centre"),
]
RESIDUAL_ITEMS = [(None, "Auto (file name, else on)"), (True, "On"), (False, "Off")]
# Suggestions for the architecture field (it is editable: any timm model name or
# open_clip:NAME, as the CLI's --arch takes); the empty entry infers it from the weights.
ARCH_SUGGESTIONS = (
    "vit_small_patch14_dinov2",
    "vit_small_patch14_reg4_dinov2",
    "deit3_small_patch16_224",
    "eva02_tiny_patch14_224",
    "beit_base_patch16_224",
    "vit_base_patch16_clip_224",
    "vit_base_patch16_clip_quickgelu_224",
    "vit_base_patch16_siglip_224",
    "vit_base_patch16_reg4_gap_256",
    "swin_tiny_patch4_window7_224",
    "open_clip:ViT-B-32",
    "open_clip:ViT-B-16",
)
ARCH_AUTO = "Infer from the weights"


class LoadOptionsDialog(QDialog):
    """Asks for :class:`~inspector.core.load_options.LoadOptions`.

    Args:
        parent: the owning window.
        path: the checkpoint the options are for (shown as its name).
        initial: options to pre-fill.
        reason: why the dialog appears (e.g. the importer's message), shown on top.
    """

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        path: str | Path | None = None,
        initial: LoadOptions | None = None,
        reason: str = "",
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Checkpoint options")
        self.setModal(True)
        initial = initial or LoadOptions()
        self._explicit_names = initial.class_names  # kept unless a file is chosen

        self.reason_label = QLabel(reason)
        self.reason_label.setWordWrap(True)
        self.reason_label.setVisible(bool(reason))
        self.reason_label.setStyleSheet("color: #d29922;")
        self.path_label = QLabel(Path(path).name if path else "")
        self.path_label.setVisible(bool(path))

        self.heads_spin = QSpinBox()
        self.heads_spin.setRange(0, 512)
        self.heads_spin.setSpecialValueText("Auto (from the file)")
        self.heads_spin.setValue(initial.heads or 0)
        self.heads_spin.setToolTip(
            "Attention heads; needed for the paper's checkpoints whose "
            "file name does not carry them"
        )

        self.normalisation_combo = _combo(NORMALISATION_ITEMS, initial.normalisation)
        self.policy_combo = _combo(POLICY_ITEMS, initial.policy)
        self.residual_combo = _combo(RESIDUAL_ITEMS, initial.residual)
        self.residual_combo.setToolTip(
            "The paper's layout only: residual connections are not visible in its weights"
        )

        self.names_edit = QLineEdit(str(initial.class_names_file or ""))
        self.names_edit.setPlaceholderText("Family default (one name per line)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_names)
        names_row = QHBoxLayout()
        names_row.setContentsMargins(0, 0, 0, 0)
        names_row.addWidget(self.names_edit, 1)
        names_row.addWidget(browse)

        self.size_spin = QSpinBox()
        self.size_spin.setRange(0, 4096)
        self.size_spin.setSingleStep(16)
        self.size_spin.setSpecialValueText("As trained")
        self.size_spin.setSuffix(" px")
        self.size_spin.setValue(initial.image_size or 0)
        self.size_spin.setToolTip(
            "Run the model at another input size: its position table is "
            "resampled (a multiple of the patch size)"
        )

        # Editable: the suggestions are the families the issue names; any name is accepted
        # and checked when the weights are loaded (a wrong one is the loader's message).
        self.arch_combo = QComboBox()
        self.arch_combo.setEditable(True)
        self.arch_combo.addItem("")
        self.arch_combo.addItems(ARCH_SUGGESTIONS)
        self.arch_combo.lineEdit().setPlaceholderText(ARCH_AUTO)
        self.arch_combo.setCurrentText(initial.arch or "")
        self.arch_combo.setToolTip(
            "The architecture where the weights cannot tell it (--arch): a timm model name "
            "(e.g. vit_base_patch16_clip_quickgelu_224) or open_clip:NAME (e.g. "
            "open_clip:ViT-B-32); empty infers it from the keys and shapes"
        )

        form = QFormLayout()
        form.addRow("Architecture:", self.arch_combo)
        form.addRow("Attention heads:", self.heads_spin)
        form.addRow("Normalisation:", self.normalisation_combo)
        form.addRow("Resize:", self.policy_combo)
        form.addRow("Class names file:", names_row)
        form.addRow("Input size:", self.size_spin)
        form.addRow("Residuals:", self.residual_combo)

        self.error_label = QLabel("")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #ff7b72;")
        self.error_label.setVisible(False)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Open")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(self.reason_label)
        layout.addWidget(self.path_label)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)
        if reason and initial.heads is None:
            self.heads_spin.setFocus()

    def options(self) -> LoadOptions:
        """The options as entered.

        Raises:
            LoadOptionsError: the class names file cannot be used.
        """
        text = self.names_edit.text().strip()
        names_file = Path(text) if text else None
        if names_file is not None:
            read_class_names(names_file)  # a wrong file is reported here, not at load time
        return LoadOptions(
            heads=self.heads_spin.value() or None,
            class_names=None if names_file is not None else self._explicit_names,
            class_names_file=names_file,
            normalisation=self.normalisation_combo.currentData(),
            policy=self.policy_combo.currentData(),
            image_size=self.size_spin.value() or None,
            residual=self.residual_combo.currentData(),
            arch=self.arch_combo.currentText().strip() or None,
        )

    def accept(self) -> None:
        """Close only when the answers are usable; otherwise say why and stay open."""
        try:
            self.options()
        except LoadOptionsError as exc:
            self.error_label.setText(str(exc))
            self.error_label.setVisible(True)
            return
        super().accept()

    def _browse_names(self) -> None:
        start = self.names_edit.text() or str(Path.cwd())
        path, _ = QFileDialog.getOpenFileName(
            self, "Class names", start, "Text files (*.txt);;All files (*)"
        )
        if path:
            self.names_edit.setText(path)

    @classmethod
    def ask(
        cls,
        parent: QWidget | None = None,
        *,
        path: str | Path | None = None,
        initial: LoadOptions | None = None,
        reason: str = "",
    ) -> LoadOptions | None:
        """Show the dialog modally; the options, or None when cancelled."""
        dialog = cls(parent, path=path, initial=initial, reason=reason)
        try:
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return None
            return dialog.options()
        finally:
            dialog.deleteLater()


def _combo(items: list, current: object) -> QComboBox:
    combo = QComboBox()
    for value, text in items:
        combo.addItem(text, value)
    for i, (value, _) in enumerate(items):
        if value == current:
            combo.setCurrentIndex(i)
    return combo
