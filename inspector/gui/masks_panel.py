"""The masks panel: the object mask of the current image, and the metrics it gives.

Public API (for the main window):

``MasksPanel(parent=None)``
    * ``set_image(display (S, S, 3) uint8, dataset_mask=None)`` - a new image; the mask is
      reset to the dataset's mask when given (else to none).
    * ``mask() -> (S, S) bool | None``; ``mask_changed(object)`` signal with the mask or None.
    * ``set_mask(mask, source="")`` - any (S, S) mask (e.g. a dropped mask file read by the
      window), ``use_dataset_mask()``, ``load_mask_file(path) -> bool``,
      ``set_box(x0, y0, x1, y1)`` (inclusive pixel corners), ``clear()``.
    * ``paint(x, y, radius=None, erase=False)`` - the image view calls it on mouse press/move:
      ``(x, y)`` is the pixel (column, row) under the cursor; pixels with
      ``(col - x)^2 + (row - y)^2 <= radius^2`` are set (or cleared); ``radius`` defaults to
      the brush spin box, ``erase`` is OR-ed with the panel's erase toggle.
    * ``paint_points(points, radius=None, erase=False)`` - a whole stroke, one update.
    * ``brush_radius()``, ``erase_mode()`` - the brush the user chose.
    * ``tool()``, ``set_tool(name)``, ``tool_changed(str)`` - the image view's tool
      (``query``, ``brush``, ``box``) chosen with the panel's buttons.
    * ``set_maskrcnn_weights(path)`` (remembered in QSettings), ``run_maskrcnn() -> bool``;
      ``busy_changed(bool)`` while Mask R-CNN runs on a worker thread; ``segmentation_done``.
    * ``set_saliency(map01)`` / ``set_threshold(t)`` - forwarded to ``metrics_view``.

The localisation metrics are :class:`inspector.gui.metrics_view.MetricsView`; Mask R-CNN is
:class:`inspector.gui.masks_maskrcnn.MaskRCNNMixin`.

No mathematics here: masks come from :mod:`inspector.core.masks`, the brush footprint from
:func:`inspector.core.postprocess.disk_footprint`, every number from :mod:`inspector.core.metrics`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from . import settings_store
from .masks_maskrcnn import MaskRCNNMixin
from .metrics_view import MetricsView, format_value
from .workers import BackgroundRunner

__all__ = ["MasksPanel", "MetricsView", "format_value"]

# The image view's tools: (key, button text, tooltip).
TOOL_BUTTONS: tuple[tuple[str, str, str], ...] = (
    ("query", "Query", "Click a patch in the image to see its attention (Q)"),
    ("brush", "Brush", "Paint the mask on the image: left drag paints, right drag erases (B)"),
    ("box", "Box", "Drag a rectangle on the image to use as the mask (X)"),
)


class MasksPanel(MaskRCNNMixin, QWidget):
    """The current image's object mask: dataset, file, box, brush or Mask R-CNN."""

    mask_changed = Signal(object)
    tool_changed = Signal(str)
    busy_changed = Signal(bool)
    segmentation_done = Signal(object)  # the core's MaskResult
    error = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: np.ndarray | None = None
        self._dataset_mask: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self._source = ""
        self._request = -1
        self._runner = BackgroundRunner(self)
        self._runner.finished.connect(self._on_segmented)
        self._runner.failed.connect(self._on_segment_failed)
        self._init_maskrcnn()
        self._build()
        self._update_state()

    # ------------------------------------------------------------------ construction
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        lay.addWidget(self.status_label)

        sources = QGroupBox("Mask")
        sl = QGridLayout(sources)
        self.dataset_button = QPushButton("Dataset mask")
        self.dataset_button.setToolTip("Use the mask that came with the dataset image")
        self.dataset_button.clicked.connect(self.use_dataset_mask)
        self.file_button = QPushButton("Load file…")
        self.file_button.setToolTip("A mask image: any non-zero pixel is object")
        self.file_button.clicked.connect(self._browse_mask)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.clear)
        # Two columns: the panel fits the side dock's ~300 px at 1280 x 720.
        sl.addWidget(self.dataset_button, 0, 0)
        sl.addWidget(self.file_button, 0, 1)
        sl.addWidget(self.clear_button, 1, 0, 1, 2)
        lay.addWidget(sources)

        box = QGroupBox("Box (inclusive pixel corners)")
        bl = QGridLayout(box)  # two rows: the panel stays narrow enough for a side dock
        self.box_spins = []
        for i, name in enumerate(("x0", "y0", "x1", "y1")):
            spin = QSpinBox()
            spin.setRange(0, 100_000)
            spin.setPrefix(f"{name} ")
            self.box_spins.append(spin)
            bl.addWidget(spin, i // 2, i % 2)
        self.box_button = QPushButton("Set box")
        self.box_button.clicked.connect(lambda: self.set_box(*(s.value() for s in self.box_spins)))
        bl.addWidget(self.box_button, 2, 0, 1, 2)
        lay.addWidget(box)

        brush = QGroupBox("Draw on the image")
        bv = QVBoxLayout(brush)
        tools = QHBoxLayout()
        self.tool_buttons: dict[str, QPushButton] = {}
        self._tool_group = QButtonGroup(self)
        self._tool_group.setExclusive(True)
        for key, text, tip in TOOL_BUTTONS:
            button = QPushButton(text)
            button.setCheckable(True)
            button.setToolTip(tip)
            self._tool_group.addButton(button)
            self.tool_buttons[key] = button
            tools.addWidget(button)
            button.toggled.connect(lambda on, key=key: on and self._on_tool_button(key))
        self.tool_buttons["query"].setChecked(True)
        bv.addLayout(tools)
        br = QHBoxLayout()
        self.radius_spin = QSpinBox()
        self.radius_spin.setRange(0, 500)
        self.radius_spin.setValue(4)
        self.radius_spin.setSuffix(" px")
        self.radius_spin.setToolTip(
            "Brush radius: pixels within this distance of the cursor's pixel are painted"
        )
        self.erase_button = QPushButton("Erase")
        self.erase_button.setCheckable(True)
        self.erase_button.setToolTip(
            "Left drag removes pixels from the mask (E); a right drag always erases"
        )
        br.addWidget(QLabel("Radius"))
        br.addWidget(self.radius_spin)
        br.addWidget(self.erase_button)
        bv.addLayout(br)
        lay.addWidget(brush)

        lay.addWidget(self._build_maskrcnn_box())

        metrics_box = QGroupBox("Localisation")
        ml = QVBoxLayout(metrics_box)
        self.metrics_view = MetricsView()
        ml.addWidget(self.metrics_view)
        lay.addWidget(metrics_box)

        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c62828;")
        self.error_label.hide()
        lay.addWidget(self.error_label)
        lay.addStretch(1)
        self.mask_changed.connect(self.metrics_view.set_mask)
        from .wheel_guard import guard_wheel

        self._wheel_guard = guard_wheel(self)
        self._show_weights()

    # ------------------------------------------------------------------ inputs
    def set_image(self, display: np.ndarray | None, dataset_mask: np.ndarray | None = None) -> None:
        """A new image (the model's ``(S, S, 3)`` display image); resets the mask to the
        dataset's mask when given, else to none. A pending Mask R-CNN result is dropped."""
        if self._request >= 0:
            self._request = -1  # a result for the previous image is stale
            self._set_busy(False)
        self._image = None if display is None else np.asarray(display)
        self._dataset_mask = None
        if dataset_mask is not None and self._image is not None:
            dm = np.asarray(dataset_mask, dtype=bool)
            if dm.shape != self._image.shape[:2]:
                self._show_error(
                    f"the dataset mask is {dm.shape}, the image {self._image.shape[:2]}; ignored"
                )
            else:
                self._dataset_mask = dm
        self._last_result = None
        self.instance_combo.clear()
        if self._image is not None:
            h, w = self._image.shape[:2]
            for spin, hi in zip(self.box_spins, (w - 1, h - 1, w - 1, h - 1), strict=True):
                spin.setMaximum(max(hi, 0))
        self._set(
            self._dataset_mask.copy() if self._dataset_mask is not None else None,
            "dataset" if self._dataset_mask is not None else "",
        )

    def image_size(self) -> tuple[int, int] | None:
        return None if self._image is None else tuple(self._image.shape[:2])

    def mask(self) -> np.ndarray | None:
        """The current ``(S, S)`` bool mask (a copy), or None."""
        return None if self._mask is None else self._mask.copy()

    def source(self) -> str:
        """Where the mask came from: dataset, file, box, brush, mask r-cnn, or ''."""
        return self._source

    def set_mask(self, mask: np.ndarray | None, source: str = "") -> bool:
        """Use ``mask`` (must be the image's size). Returns False (message shown) if not."""
        if mask is None:
            self._set(None, "")
            return True
        size = self._require_image()
        if size is None:
            return False
        m = np.asarray(mask)
        if m.shape != size:
            self._show_error(
                f"mask is {m.shape[0]}x{m.shape[1] if m.ndim > 1 else '?'}, the "
                f"image {size[0]}x{size[1]}"
            )
            return False
        self._set(m.astype(bool, copy=True), source or "mask")
        return True

    @Slot()
    def use_dataset_mask(self) -> None:
        if self._dataset_mask is not None:
            self._set(self._dataset_mask.copy(), "dataset")

    def load_mask_file(self, path: str | Path) -> bool:
        """Read a mask image (non-zero = object), resized to the image by nearest neighbour."""
        from inspector.core.masks import MaskError, mask_from_file

        size = self._require_image()
        if size is None:
            return False
        try:
            m = mask_from_file(path, size)
        except MaskError as exc:
            self._show_error(str(exc))
            return False
        self._set(m, f"file {Path(path).name}")
        return True

    def set_box(self, x0: int, y0: int, x1: int, y1: int) -> bool:
        """A rectangle with inclusive pixel corners (column x, row y); the image view calls it
        for a dragged box (corners in any order)."""
        from inspector.core.masks import MaskError, box_mask

        size = self._require_image()
        if size is None:
            return False
        x0, x1 = sorted((int(x0), int(x1)))
        y0, y1 = sorted((int(y0), int(y1)))
        try:
            m = box_mask(size, x0, y0, x1, y1)
        except MaskError as exc:
            self._show_error(str(exc))
            return False
        for spin, v in zip(self.box_spins, (x0, y0, x1, y1), strict=True):
            spin.blockSignals(True)
            spin.setValue(v)
            spin.blockSignals(False)
        self._set(m, "box")
        return True

    def paint(self, x: float, y: float, radius: int | None = None, erase: bool = False) -> bool:
        """Set (or with ``erase`` clear) the disk of pixels ``(col-x)^2 + (row-y)^2 <= r^2``
        around pixel ``(x, y)`` (column, row; floats are floored to the pixel under them)."""
        return self.paint_points([(x, y)], radius, erase)

    def paint_points(self, points: Any, radius: int | None = None, erase: bool = False) -> bool:
        """:meth:`paint` at every ``(x, y)`` of ``points`` (a brush stroke), one update at the
        end. Points outside the image are clipped away."""
        from inspector.core.postprocess import disk_footprint

        size = self._require_image()
        if size is None:
            return False
        r = self.radius_spin.value() if radius is None else int(radius)
        erase = erase or self.erase_button.isChecked()
        disk = disk_footprint(r)  # (2r+1, 2r+1), centre at [r, r]
        h, w = size
        mask = self._mask.copy() if self._mask is not None else np.zeros(size, dtype=bool)
        for x, y in points:
            cx, cy = math.floor(x), math.floor(y)
            # Clip the stamp to the image: rows cy-r..cy+r, columns cx-r..cx+r.
            r0, r1 = max(cy - r, 0), min(cy + r + 1, h)
            c0, c1 = max(cx - r, 0), min(cx + r + 1, w)
            if r0 < r1 and c0 < c1:
                stamp = disk[r0 - (cy - r) : r1 - (cy - r), c0 - (cx - r) : c1 - (cx - r)]
                mask[r0:r1, c0:c1][stamp] = not erase
        self._set(mask, "brush")
        return True

    def tool(self) -> str:
        """The image view's tool chosen here: ``query``, ``brush`` or ``box``."""
        return next(k for k, b in self.tool_buttons.items() if b.isChecked())

    def set_tool(self, tool: str) -> None:
        """Check the tool's button (emits ``tool_changed`` when it changes)."""
        self.tool_buttons[tool].setChecked(True)

    def _on_tool_button(self, key: str) -> None:
        self.tool_changed.emit(key)

    def brush_radius(self) -> int:
        return self.radius_spin.value()

    def erase_mode(self) -> bool:
        return self.erase_button.isChecked()

    @Slot()
    def clear(self) -> None:
        self._set(None, "")

    def set_saliency(self, map01: np.ndarray | None) -> None:
        """Forwarded to the metrics view."""
        self.metrics_view.set_saliency(map01)

    def set_threshold(self, threshold: float) -> None:
        self.metrics_view.set_threshold(threshold)

    # ------------------------------------------------------------------ internals
    def _require_image(self) -> tuple[int, int] | None:
        if self._image is None:
            self._show_error("open an image first")
            return None
        return tuple(self._image.shape[:2])

    def _set(self, mask: np.ndarray | None, source: str) -> None:
        self._mask = mask
        self._source = source if mask is not None else ""
        self._show_error("")
        self._update_state()
        self.mask_changed.emit(None if mask is None else mask.copy())

    def _set_busy(self, busy: bool) -> None:
        self.busy_bar.setVisible(busy)
        self._update_state()
        self.busy_changed.emit(busy)

    def _update_state(self) -> None:
        has_image = self._image is not None
        busy = self._request >= 0
        self.dataset_button.setEnabled(self._dataset_mask is not None)
        for w in (self.file_button, self.box_button, *self.box_spins):
            w.setEnabled(has_image)
        self.clear_button.setEnabled(self._mask is not None)
        self.run_button.setEnabled(has_image and not busy and bool(self.maskrcnn_weights()))
        self.instance_combo.setEnabled(self._last_result is not None and not busy)
        if not has_image:
            self.status_label.setText("No image.")
        elif self._mask is None:
            self.status_label.setText(
                "No mask: use the dataset's, load a file, set a box, "
                "paint on the image or run Mask R-CNN."
            )
        else:
            n = int(self._mask.sum())
            self.status_label.setText(
                f"Mask from {self._source}: {n} px "
                f"({100.0 * n / self._mask.size:.1f}% of the image)"
            )

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.setVisible(bool(message))
        if message:
            self.error.emit(message)

    def _browse_mask(self) -> None:
        settings = settings_store.store()
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open mask",
            str(settings.value("masks/last_dir", "")),
            "Images (*.png *.jpg *.jpeg *.bmp *.webp *.tif *.tiff *.gif)",
        )
        if path:
            settings.setValue("masks/last_dir", str(Path(path).parent))
            self.load_mask_file(path)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt name
        self.wait_idle()
        super().closeEvent(event)
