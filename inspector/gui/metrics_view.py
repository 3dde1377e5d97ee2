"""The localisation metrics of one (saliency map, mask) pair, as the masks panel shows them.

``MetricsView(parent=None)``
    SMM at the current threshold and the other localisation metrics of
    :func:`inspector.core.metrics.localisation_metrics` for (saliency map, mask); "undefined"
    for None. ``set_saliency``, ``set_mask``, ``set_threshold`` update the SMM line on the next
    event-loop turn (:func:`inspector.core.metrics.smm`, ~0.3 ms) and coalesce into one full
    update once the inputs rest for ``METRICS_DEBOUNCE_MS`` (every metric: ~10 ms at 224 x 224,
    too slow for every step of a slider drag); ``refresh()`` forces the full update now;
    ``updated(dict)`` after each full update (``metrics()`` is always one consistent set).

No mathematics here: every number comes from :mod:`inspector.core.metrics`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QGridLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

# The full metrics follow a moving slider or brush once it rests this long (the head/layer
# explorer uses the same delay); SMM itself is updated at once.
METRICS_DEBOUNCE_MS = 60

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
