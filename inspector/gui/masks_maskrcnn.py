"""Mask R-CNN in the masks panel: the weights file, the detector's settings, a run on a worker
thread and the choice of instance.

:class:`MaskRCNNMixin` is one part of :class:`inspector.gui.masks_panel.MasksPanel` (it uses the
panel's ``_image``, ``_set``, ``_set_busy``, ``_show_error`` and ``_update_state``); the detector
itself is :class:`inspector.core.masks.MaskRCNNSegmenter`, imported on the worker thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QLabel,
    QProgressBar,
    QPushButton,
)

from . import settings_store
from .workers import BackgroundRunner

SETTINGS_WEIGHTS = "masks/maskrcnn_weights"
SETTINGS_VARIANT = "masks/maskrcnn_variant"


class MaskRCNNMixin:
    """The Mask R-CNN group box and its run; mixed into the masks panel (a QWidget)."""

    # Filled by the panel's __init__.
    _image: np.ndarray | None
    _runner: BackgroundRunner
    _request: int

    def _init_maskrcnn(self) -> None:
        self._segmenter: Any = None
        self._segmenter_key: tuple | None = None
        self._last_result: Any = None
        # torchvision's internal resize; None = the core's default (800 / 1333)
        self.maskrcnn_min_size: int | None = None
        self.maskrcnn_max_size: int | None = None

    def _build_maskrcnn_box(self) -> QGroupBox:
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
        return rcnn

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

    def _show_weights(self) -> None:
        w = self.maskrcnn_weights()
        self.weights_label.setText(Path(w).name if w else "not set")
        self.weights_label.setToolTip(w)
        if hasattr(self, "run_button"):
            self._update_state()

    def _browse_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Mask R-CNN weights",
            self.maskrcnn_weights(),
            "PyTorch state dict (*.pth *.pt);;All files (*)",
        )
        if path:
            self.set_maskrcnn_weights(path)


def _dspin(value: float, tip: str) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(0.0, 1.0)
    spin.setDecimals(2)
    spin.setSingleStep(0.05)
    spin.setValue(value)
    spin.setToolTip(tip)
    return spin
