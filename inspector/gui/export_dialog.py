"""Exporting what the window shows, paper-ready: the overlay enlarged to a chosen size with the
mask outline and a colour bar in the method's units, the map in [0, 1] and the method's raw
values as ``.npy``, and a JSON with the settings the method uses and the mask's source.

The pixels and the files come from the core (:func:`inspector.core.figure.map_figure`,
:func:`inspector.core.export.write_map_files`: atomic, never replacing a file unless asked), the
same functions ``vit-inspector explain`` calls. This module holds the dialog: folder, name,
size, colour bar and outline; a missing folder is offered for creation and existing files for
replacement, each in a window-modal message box (so a test clicks it as a user would).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from inspector.core import export as core_export
from inspector.core.figure import DEFAULT_SIZE, map_figure

from .controls import ViewSettings

__all__ = [
    "ExportDialog",
    "ExportError",
    "export_overlay",
    "mask_source",
    "suggested_name",
]


class ExportError(Exception):
    """Nothing to export, a target file exists, or the file cannot be written."""


def suggested_name(image_path: Path | None, settings: ViewSettings) -> str:
    """A file name carrying the method and its settings, e.g.
    ``cat_rollout_max_d0.90.png`` or ``cat_attention_L3_h2_q12.png``."""
    m = settings.map
    parts = [image_path.stem if image_path else "overlay", m.method]
    # Only the settings the method reads (the registry says which) name the file.
    if m.uses("fusion") and not (m.uses("head") and m.head is not None):
        parts.append(m.fusion)
    if m.uses("discard_ratio"):
        parts.append(f"d{m.discard_ratio:.2f}")
    if m.uses("layer"):
        parts.append(f"L{m.layer}")
    if m.uses("head") and m.head is not None:
        parts.append(f"h{m.head}")
    if m.uses("aggregation"):
        parts.append(m.aggregation)
    if m.uses("query") and m.query != 0:
        parts.append(f"q{m.query}")
    if m.uses("class_index") and m.class_index is not None:
        parts.append(f"c{m.class_index}")
    if m.uses("target") and m.target != "logit":
        parts.append(m.target)
    if m.uses("start_layer") and m.start_layer:
        parts.append(f"s{m.start_layer}")
    if settings.smoothing != "none":
        parts.append(settings.smoothing)
    return "_".join(parts) + ".png"


# The masks panel's source strings -> the metadata's mask sources.
_PANEL_SOURCES = {"brush": "painted", "box": "box", "dataset": "dataset"}


def mask_source(
    mask: np.ndarray | None,
    mask_path: Path | None,
    panel_source: str = "",
    dataset_file: str | Path | None = None,
) -> dict[str, Any] | None:
    """The metadata record of the active mask: a file (its path), painted, a box, the dataset's
    annotation, Mask R-CNN. ``panel_source`` is the masks panel's ``source()``."""
    if mask is None:
        return None
    if mask_path is not None:
        return core_export.mask_record("file", mask, mask_path)
    src = panel_source or ""
    if src.startswith("file"):
        return core_export.mask_record("file", mask, src[5:].strip() or None)
    if src.startswith("mask r-cnn"):
        return core_export.mask_record("mask r-cnn", mask)
    kind = _PANEL_SOURCES.get(src, "array")
    return core_export.mask_record(kind, mask, dataset_file if kind == "dataset" else None)


def export_overlay(
    path: Path,
    result: Any,
    metadata: Mapping[str, Any],
    *,
    smoothing: str,
    colormap: str,
    mask: np.ndarray | None = None,
    size: int = DEFAULT_SIZE,
    colorbar: bool = True,
    outline: bool = True,
    overwrite: bool = False,
) -> list[Path]:
    """Write the figure of a pipeline result and its ``.npy`` / ``_raw.npy`` / ``.json``.

    Args:
        path: the PNG's path (``.png`` is added when missing).
        result: the :class:`~inspector.core.pipeline.ExplainResult` on screen.
        metadata: settings and provenance (mask source included).
        smoothing, colormap: the view's (the colour bar must match the overlay).
        mask: ``(S, S)`` bool, the mask active now (it may have changed since the map was
            computed: a mask change only redraws the outline), or None.
        size: the figure's image side in pixels (0: the model's input size).
        colorbar: draw the colour bar with the map's real values.
        outline: outline ``mask`` (when one is given).
        overwrite: replace existing files (otherwise nothing is written if one exists).

    Raises:
        ExportError: a file exists (and ``overwrite`` is False), the folder is missing or the
            files cannot be written.
    """
    paths = core_export.map_file_paths(path)
    if not paths["png"].parent.is_dir():
        raise ExportError(f"Folder {paths['png'].parent} does not exist")
    try:
        fig = map_figure(
            result.overlay,
            result.full,
            result.raw_grid,
            smoothing=smoothing,
            colormap=colormap,
            mask=mask if outline else None,
            size=size,
            colorbar=colorbar,
        )
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    meta = {**dict(metadata), "figure": fig.meta}
    try:
        return core_export.write_map_files(
            paths["png"], fig.rgb, result.full, result.raw_grid, meta, overwrite=overwrite
        )
    except FileExistsError:
        existing = [p.name for p in paths.values() if p.exists() or p.is_symlink()]
        raise ExportError(
            f"{', '.join(existing)} already exist(s) in {paths['png'].parent}"
        ) from None
    except OSError as exc:  # read-only or full disk, a folder in the way
        raise ExportError(f"Cannot write {paths['png'].name}: {exc.strerror or exc}") from None


class ExportDialog(QDialog):
    """Folder, file name, size, colour bar and outline; Export writes through ``export``.

    ``export(path, overwrite=..., size=..., colorbar=..., outline=...) -> list[Path]`` does the
    writing (or, for a batch, starts it: ``files_note`` then replaces the file name with a line
    on how the files are named, and ``path`` is ``<folder>/<name>``) and raises
    :class:`ExportError`. A missing folder is offered for creation, existing
    files for replacement (``self.confirm`` is the open question box).

    Signals:
        exported(list): the files written (the dialog then closes).
    """

    exported = Signal(list)

    def __init__(
        self,
        export: Callable[..., list[Path]],
        folder: str | Path,
        name: str,
        *,
        title: str = "Export overlay",
        size_label: str = "Image size (px)",
        size: int = DEFAULT_SIZE,
        size_range: tuple[int, int] = (0, 4096),
        has_mask: bool = False,
        with_colorbar: bool = True,
        figure_options: bool = True,
        files_note: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self._export = export
        self.confirm: QMessageBox | None = None
        self._overwrite = False

        self.folder_edit = QLineEdit(str(folder))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(browse)
        self.name_edit = QLineEdit(name)
        self.size_spin = QSpinBox()
        self.size_spin.setRange(*size_range)
        self.size_spin.setValue(size)
        if size_range[0] == 0:
            self.size_spin.setSpecialValueText("model input size")
        self.colorbar_box = QCheckBox("Colour bar with the map's values")
        self.colorbar_box.setChecked(with_colorbar)
        self.outline_box = QCheckBox("Outline the mask")
        self.outline_box.setChecked(has_mask)
        self.outline_box.setEnabled(has_mask)
        if not has_mask:
            self.outline_box.setToolTip("No mask is active")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #d1242f;")

        form = QFormLayout()
        form.addRow("Folder", folder_row)
        if files_note:  # a batch: the names come from the images (``files_note`` says how)
            self.name_edit.hide()
            self.files_label = QLabel(files_note)
            self.files_label.setWordWrap(True)
            form.addRow("Files", self.files_label)
        else:
            form.addRow("File name", self.name_edit)
        form.addRow(size_label, self.size_spin)
        if figure_options:  # the overlay's; the grid has neither
            form.addRow("", self.colorbar_box)
            form.addRow("", self.outline_box)
        else:
            self.colorbar_box.hide()
            self.outline_box.hide()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.save_button.setText("Export")
        self.buttons.accepted.connect(self.try_export)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.message)
        lay.addWidget(self.buttons)
        self.setMinimumWidth(460)

    # -- state -------------------------------------------------------------------------------
    def target(self) -> Path:
        name = self.name_edit.text().strip() or "overlay.png"
        path = Path(self.folder_edit.text().strip()).expanduser() / name
        return path if path.suffix.lower() == ".png" else path.with_name(path.name + ".png")

    def options(self) -> dict[str, Any]:
        return {
            "size": self.size_spin.value(),
            "colorbar": self.colorbar_box.isChecked(),
            "outline": self.outline_box.isChecked(),
        }

    # -- flow --------------------------------------------------------------------------------
    def try_export(self) -> None:
        """Export; a missing folder or existing files ask first (window-modal, non-blocking)."""
        folder = self.target().parent
        if not folder.is_dir():
            if folder.exists():
                self.message.setText(f"{folder} is a file, not a folder")
                return
            self._ask(
                "Create folder?",
                f"The folder {folder} does not exist.\n\nCreate it and export there?",
                self._create_and_export,
            )
            return
        self._write(overwrite=self._overwrite)

    def _create_and_export(self) -> None:
        try:
            core_export.ensure_folder(self.target().parent, create=True)
        except OSError as exc:
            self.message.setText(f"Cannot create {self.target().parent}: {exc.strerror or exc}")
            return
        self._write(overwrite=False)

    def _write(self, *, overwrite: bool) -> None:
        try:
            written = self._export(self.target(), overwrite=overwrite, **self.options())
        except ExportError as exc:
            if "exist" in str(exc) and not overwrite and self.target().parent.is_dir():
                self._ask("Replace files?", f"{exc}.\n\nReplace them?", self._replace)
                return
            self.message.setText(str(exc))
            return
        self.message.setText("")
        self.exported.emit(written)
        self.accept()

    def _replace(self) -> None:
        self._write(overwrite=True)

    def _ask(self, title: str, text: str, on_yes: Callable[[], None]) -> None:
        box = QMessageBox(
            QMessageBox.Icon.Question,
            title,
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            self,
        )
        box.setDefaultButton(QMessageBox.StandardButton.Yes)
        box.setWindowModality(Qt.WindowModality.WindowModal)

        def answered(button) -> None:
            self.confirm = None
            if box.standardButton(button) == QMessageBox.StandardButton.Yes:
                on_yes()

        box.buttonClicked.connect(answered)
        self.confirm = box
        box.open()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export folder", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)
