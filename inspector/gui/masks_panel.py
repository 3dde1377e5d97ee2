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

``MetricsView(parent=None)``
    SMM at the current threshold and the other localisation metrics of
    :func:`inspector.core.metrics.localisation_metrics` for (saliency map, mask); "undefined"
    for None. ``set_saliency``, ``set_mask``, ``set_threshold`` update the SMM line on the next
    event-loop turn (:func:`inspector.core.metrics.smm`, ~0.3 ms) and coalesce into one full
    update once the inputs rest for ``METRICS_DEBOUNCE_MS`` (every metric: ~10 ms at 224 x 224,
    too slow for every step of a slider drag); ``refresh()`` forces the full update now;
    ``updated(dict)`` after each full update (``metrics()`` is always one consistent set).

No mathematics here: masks come from :mod:`inspector.core.masks`, the brush footprint from
:func:`inspector.core.postprocess.disk_footprint`, every number from :mod:`inspector.core.metrics`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from . import settings_store
from .workers import BackgroundRunner

SETTINGS_WEIGHTS = "masks/maskrcnn_weights"
# The full metrics follow a moving slider or brush once it rests this long (the head/layer
# explorer uses the same delay); SMM itself is updated at once.
METRICS_DEBOUNCE_MS = 60
SETTINGS_VARIANT = "masks/maskrcnn_variant"

# The image view's tools: (key, button text, tooltip).
TOOL_BUTTONS: tuple[tuple[str, str, str], ...] = (
    ("query", "Query", "Click a patch in the image to see its attention (Q)"),
    ("brush", "Brush", "Paint the mask on the image: left drag paints, right drag erases (B)"),
    ("box", "Box", "Drag a rectangle on the image to use as the mask (X)"),
)

# (key of localisation_metrics, label, tooltip) in display order.
METRIC_ROWS: tuple[tuple[str, str, str], ...] = (
    (
        "pointing_game",
        "Pointing game",
        "Is the map's maximum within 15 px (at 224 px, scaled to the image) of the mask?",
    ),
    ("relevance_mass", "Relevance mass", "Share of the map's total inside the mask"),
    (
        "relevance_rank_accuracy",
        "Rank accuracy",
        "Share of the |mask| highest map pixels that lie in the mask",
    ),
    ("iou_object", "IoU (object)", "Thresholded map vs mask"),
    (
        "map",
        "mAP",
        "Average precision of the object and background channels pooled (Chefer et al.)",
    ),
    ("mask_fraction", "Mask fraction", "Share of the image covered by the mask"),
)


def format_value(value: Any) -> str:
    """How a metric is shown: 4 decimals, yes/no for booleans, 'undefined' for None/NaN."""
    if value is None:
        return "undefined"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    v = float(value)
    return "undefined" if math.isnan(v) else f"{v:.4f}"


class MetricsView(QWidget):
    """SMM and the other localisation metrics for one (saliency map, mask) pair."""

    updated = Signal(dict)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._saliency: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self._threshold = 0.3
        self._metrics: dict[str, Any] = {}
        self._error = ""
        # When True (the main window's docked panel), no metrics are computed while the view
        # is hidden (another tab is on top); they are computed when it is shown.
        self.defer_when_hidden = False
        self._stale = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(METRICS_DEBOUNCE_MS)  # restarted by every change: one update
        self._timer.timeout.connect(self.refresh)  # when a drag or a stroke rests
        self._smm_timer = QTimer(self)
        self._smm_timer.setSingleShot(True)
        self._smm_timer.setInterval(0)  # coalesce the changes of one event-loop turn
        self._smm_timer.timeout.connect(self._refresh_smm)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.smm_label = QLabel()
        self.smm_label.setTextFormat(Qt.TextFormat.PlainText)
        font = self.smm_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        self.smm_label.setFont(font)
        self.smm_label.setToolTip(
            "Saliency-map Mask Metric: Jaccard index between the map "
            "thresholded at t (after min-max scaling) and the mask"
        )
        lay.addWidget(self.smm_label)
        # What SMM is, in visible text (a tooltip alone is found by few).
        self.smm_help = QLabel(
            "SMM: the overlap (IoU) between the map's pixels above the SMM threshold "
            "(after min–max scaling) and the mask; 1 when they coincide."
        )
        self.smm_help.setWordWrap(True)
        self.smm_help.setStyleSheet("color: gray;")
        lay.addWidget(self.smm_help)
        grid = QGridLayout()
        grid.setColumnStretch(1, 1)
        widest = self.fontMetrics().horizontalAdvance("undefined") + 6
        self._value_labels: dict[str, QLabel] = {}
        for row, (key, name, tip) in enumerate(METRIC_ROWS):
            label = QLabel(name)
            label.setToolTip(tip)
            value = QLabel()
            value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setMinimumWidth(widest)  # "yes", "0.1234", "undefined": never squeezed
            grid.addWidget(label, row, 0)
            grid.addWidget(value, row, 1)
            self._value_labels[key] = value
        lay.addLayout(grid)
        self.refresh()

    # inputs ---------------------------------------------------------------------------
    def set_saliency(self, map01: np.ndarray | None) -> None:
        """The current map (any grid; the metrics upsample it to the mask), or None."""
        self._saliency = None if map01 is None else np.asarray(map01)
        self._changed()

    def set_mask(self, mask: np.ndarray | None) -> None:
        self._mask = None if mask is None else np.asarray(mask, dtype=bool)
        self._changed()

    def set_threshold(self, threshold: float) -> None:
        """SMM threshold t in [0, 1] (0.3 in the paper)."""
        self._threshold = float(threshold)
        self._changed()

    def _changed(self) -> None:
        self._smm_timer.start()
        self._timer.start()  # (re)start: the full update waits for a quiet moment

    def threshold(self) -> float:
        return self._threshold

    def pending(self) -> bool:
        """Whether an update is scheduled (a change that the view does not show in full yet)."""
        return self._timer.isActive() or self._smm_timer.isActive()

    def metrics(self) -> dict[str, Any]:
        """The values shown now (empty when there is no map or no mask)."""
        return dict(self._metrics)

    def smm_text(self) -> str:
        return self.smm_label.text()

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt name
        super().showEvent(event)
        if self._stale:
            self._timer.start()

    # output ---------------------------------------------------------------------------
    @Slot()
    def _refresh_smm(self) -> None:
        """Only the SMM line, at once, while the full update waits for the inputs to rest."""
        if (
            self._saliency is None
            or self._mask is None
            or (self.defer_when_hidden and not self.isVisible())
        ):
            return  # nothing to show, or refresh() shows it (hidden: when shown again)
        from inspector.core.metrics import smm

        try:
            value = smm(self._saliency, self._mask, self._threshold)
        except ValueError:
            return  # refresh() reports the error
        self.smm_label.setText(f"SMM@{self._threshold:.2f}: {format_value(value)}")

    @Slot()
    def refresh(self) -> None:
        """Recompute now (normally called by the coalescing timer)."""
        self._timer.stop()
        self._smm_timer.stop()
        if self.defer_when_hidden and not self.isVisible():
            self._stale = True
            return
        self._stale = False
        self._metrics, self._error = {}, ""
        if self._saliency is not None and self._mask is not None:
            from inspector.core.metrics import localisation_metrics

            try:
                self._metrics = localisation_metrics(self._saliency, self._mask, self._threshold)
            except ValueError as exc:  # MetricError: wrong shapes, threshold out of range
                self._error = str(exc)
        t = f"{self._threshold:.2f}"
        if self._error:
            self.smm_label.setText(f"SMM@{t}: error")
            self.smm_label.setToolTip(self._error)
        elif not self._metrics:
            missing = "no mask" if self._mask is None else "no map"
            self.smm_label.setText(f"SMM@{t}: — ({missing})")
        else:
            self.smm_label.setText(f"SMM@{t}: {format_value(self._metrics['smm'])}")
        for key, label in self._value_labels.items():
            label.setText(format_value(self._metrics[key]) if key in self._metrics else "—")
        self.updated.emit(dict(self._metrics))


class MasksPanel(QWidget):
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
        self._segmenter: Any = None
        self._segmenter_key: tuple | None = None
        self._last_result: Any = None
        self._request = -1
        self._runner = BackgroundRunner(self)
        self._runner.finished.connect(self._on_segmented)
        self._runner.failed.connect(self._on_segment_failed)
        # torchvision's internal resize; None = the core's default (800 / 1333)
        self.maskrcnn_min_size: int | None = None
        self.maskrcnn_max_size: int | None = None
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

        rcnn = QGroupBox("Mask R-CNN")
        rf = QFormLayout(rcnn)
        rf.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.weights_label = QLabel()
        self.weights_label.setWordWrap(True)
        self.weights_button = QPushButton("Weights file…")
        self.weights_button.setToolTip(
            "A local torchvision Mask R-CNN state dict (COCO); nothing is downloaded"
        )
        self.weights_button.clicked.connect(self._browse_weights)
        rf.addRow(self.weights_button, self.weights_label)
        self.variant_combo = QComboBox()
        from inspector.core.masks import MASKRCNN_VARIANTS

        self.variant_combo.addItems(list(MASKRCNN_VARIANTS))
        settings = settings_store.store()
        variant = str(settings.value(SETTINGS_VARIANT, MASKRCNN_VARIANTS[0]))
        if variant in MASKRCNN_VARIANTS:
            self.variant_combo.setCurrentText(variant)
        self.variant_combo.currentTextChanged.connect(
            lambda v: settings_store.store().setValue(SETTINGS_VARIANT, v)
        )
        rf.addRow("Variant", self.variant_combo)
        self.score_spin = _dspin(0.3, "Keep detections with score >= this (paper: 0.3)")
        rf.addRow("Score threshold", self.score_spin)
        self.mask_thr_spin = _dspin(0.5, "Mask pixels with probability > this (paper: 0.5)")
        rf.addRow("Mask threshold", self.mask_thr_spin)
        self.instance_combo = QComboBox()
        self.instance_combo.setToolTip("Union of all detections, or one instance")
        self.instance_combo.activated.connect(self._on_instance_chosen)
        rf.addRow("Instance", self.instance_combo)
        self.run_button = QPushButton("Run Mask R-CNN")
        self.run_button.clicked.connect(self.run_maskrcnn)
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)  # indeterminate: segmentation has no progress steps
        self.busy_bar.setMaximumHeight(10)
        self.busy_bar.setTextVisible(False)
        self.busy_bar.hide()
        rf.addRow(self.run_button, self.busy_bar)
        lay.addWidget(rcnn)

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

    # ------------------------------------------------------------------ Mask R-CNN
    def maskrcnn_weights(self) -> str:
        return str(settings_store.store().value(SETTINGS_WEIGHTS, "") or "")

    def set_maskrcnn_weights(self, path: str | Path) -> None:
        """The weights file the user chose once; remembered in QSettings."""
        settings_store.store().setValue(SETTINGS_WEIGHTS, str(path))
        self._segmenter = self._segmenter_key = None
        self._show_weights()

    def is_busy(self) -> bool:
        return self._request >= 0 and self._runner.busy()

    @Slot()
    def run_maskrcnn(self) -> bool:
        """Segment the current image on a worker thread; the result replaces the mask.

        Returns False (and shows why) with no image, no weights file, or a run in progress.
        """
        if self.is_busy():
            return False
        weights = self.maskrcnn_weights()
        if not weights:
            self._show_error("choose a Mask R-CNN weights file first")
            return False
        image = self._image
        if image is None:
            self._show_error("open an image first")
            return False
        key = (
            weights,
            self.variant_combo.currentText(),
            self.score_spin.value(),
            self.mask_thr_spin.value(),
            self.maskrcnn_min_size,
            self.maskrcnn_max_size,
        )
        cached = self._segmenter if self._segmenter_key == key else None

        def job() -> tuple[tuple, Any, Any]:
            # Runs on a worker thread: building the model loads ~170 MB of weights.
            from inspector.core.masks import MaskRCNNSegmenter

            seg = cached
            if seg is None:
                sizes = {
                    k: v for k, v in (("min_size", key[4]), ("max_size", key[5])) if v is not None
                }
                seg = MaskRCNNSegmenter(
                    weights, variant=key[1], score_threshold=key[2], mask_threshold=key[3], **sizes
                )
            return key, seg, seg.segment(image)

        self._show_error("")
        self._request = self._runner.submit(job)
        self._set_busy(True)
        return True

    @Slot(int, object)
    def _on_segmented(self, request_id: int, result: Any) -> None:
        if request_id != self._request:
            return  # stale: the image changed meanwhile
        self._request = -1
        self._set_busy(False)
        key, seg, res = result
        self._segmenter, self._segmenter_key = seg, key
        self._last_result = res
        self.instance_combo.clear()
        self.instance_combo.addItem(f"all ({len(res.detections)} detections)", -1)
        for i, (label, score, _box) in enumerate(res.detections):
            self.instance_combo.addItem(f"{i}: {seg.label_name(label)} ({score:.2f})", i)
        self._set(
            np.asarray(res.mask, dtype=bool).copy(),
            f"mask r-cnn ({len(res.detections)} detections)",
        )
        self.segmentation_done.emit(res)

    @Slot(int, str)
    def _on_segment_failed(self, request_id: int, message: str) -> None:
        if request_id != self._request:
            return
        self._request = -1
        self._set_busy(False)
        self._show_error(f"Mask R-CNN: {message}")

    @Slot(int)
    def _on_instance_chosen(self, index: int) -> None:
        res = self._last_result
        if res is None:
            return
        k = self.instance_combo.itemData(index)
        if k is None or k < 0:
            self._set(np.asarray(res.mask, dtype=bool).copy(), "mask r-cnn (all)")
        else:
            self._set(
                np.asarray(res.instance_masks[k], dtype=bool).copy(), f"mask r-cnn (instance {k})"
            )

    def wait_idle(self, timeout_ms: int = 30_000) -> None:
        """Wait for a running segmentation's thread (window close)."""
        self._request = -1
        self._runner.wait_all(timeout_ms)

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

    def _show_weights(self) -> None:
        w = self.maskrcnn_weights()
        self.weights_label.setText(Path(w).name if w else "not set")
        self.weights_label.setToolTip(w)
        if hasattr(self, "run_button"):
            self._update_state()

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

    def _browse_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Mask R-CNN weights",
            self.maskrcnn_weights(),
            "PyTorch state dict (*.pth *.pt);;All files (*)",
        )
        if path:
            self.set_maskrcnn_weights(path)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt name
        self.wait_idle()
        super().closeEvent(event)


def _dspin(value: float, tip: str) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(0.0, 1.0)
    spin.setDecimals(2)
    spin.setSingleStep(0.05)
    spin.setValue(value)
    spin.setToolTip(tip)
    return spin
