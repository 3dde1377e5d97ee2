"""The method panel: every knob of the map and of its display, as one immutable settings value.

The panel holds no mathematics: it turns widget states into a :class:`ViewSettings` (a
:class:`~inspector.core.saliency.MapSettings` plus display options) and emits
:attr:`ControlsPanel.changed` on every edit. The window coalesces those signals, so a slider
dragged quickly produces one map per event-loop turn, computed from the newest settings.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from inspector.core.colorscale import SCALINGS
from inspector.core.postprocess import COLORMAPS
from inspector.core.saliency import AGGREGATIONS, FUSIONS, METHODS, TARGETS, MapSettings, registry
from inspector.core.view_settings import ViewSettings

from .layout import row

__all__ = ["ControlsPanel", "ViewSettings", "SMOOTHINGS"]

SMOOTHINGS: tuple[str, ...] = ("none", "paper")

# Method names, labels and tooltips come from the core's registry (one place for method
# metadata); these views of it are what menus and combo boxes need.
METHOD_LABELS = {m.name: m.label for m in registry.methods()}
METHOD_TIPS = {m.name: m.description for m in registry.methods()}
SMOOTHING_LABELS = {"none": "None (bilinear)", "paper": "Paper (seed 003)"}
SMOOTHING_TIPS = {
    "none": "Bilinear upsampling of the patch grid",
    "paper": "Seed 003's median + Gaussian smoothing after upsampling",
}
# Short: the panel's width is the image's loss (the tooltip and the bars' notes say more).
SCALING_LABELS = {"per-map": "Per map", "grid": "Shared: grid", "compare": "Shared: compare"}
TARGET_LABELS = {
    "logit": "logit",
    "probability": "probability (vit-explain)",
    "log-probability": "log-probability",
}
# Each control and the MapSettings field it sets: a control is enabled when the method
# reads that field (MethodInfo.uses).
_FIELDS = {
    "fusion": "fusion",
    "discard": "discard_ratio",
    "layer": "layer",
    "head": "head",
    "start": "start_layer",
    "query": "query",
    "legacy": "legacy_normalisation",
    "aggregation": "aggregation",
    "class": "class_index",
    "target": "target",
}


def _fixed_label(widest: str) -> QLabel:
    """A value label of fixed size: its text changes on every slider step, and a fixed-size
    widget's new text repaints the label only instead of laying out the whole panel again."""
    label = QLabel(widest)
    label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    label.setFixedSize(label.fontMetrics().horizontalAdvance(widest) + 8, label.sizeHint().height())
    return label


class ControlsPanel(QWidget):
    """Method, head fusion, discard ratio, layer / head / query, smoothing and display.

    Signals:
        changed(): any setting changed (read :meth:`settings`).
    """

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._query = 0
        self._class_index: int | None = None
        self._num_prefix = 1
        self._grid: tuple[int, int] = (1, 1)
        self._blocking = False

        # ---- map ------------------------------------------------------------------------
        self.method = QComboBox()
        for i, m in enumerate(METHODS):
            self.method.addItem(METHOD_LABELS.get(m, m), m)
            self.method.setItemData(i, METHOD_TIPS.get(m, ""), Qt.ItemDataRole.ToolTipRole)
        self.method.setToolTip(f"Saliency method (Ctrl+1–{min(9, len(METHODS))})")
        self.fusion = QComboBox()
        self.fusion.addItems(list(FUSIONS))
        self.fusion.setToolTip(
            "How the heads are fused: mean, max or min (the paper found min "
            "most focused; vit-explain defaults to max)"
        )
        self.aggregation = QComboBox()
        for a in AGGREGATIONS:
            self.aggregation.addItem({"meanstd": "mean / std"}.get(a, a), a)
        self.aggregation.setToolTip(
            "Last-layer head aggregation; mean/std is high where the heads agree (seed 003)"
        )
        self.discard = QSlider(Qt.Orientation.Horizontal)
        self.discard.setRange(0, 99)
        self.discard.setPageStep(5)
        self.discard.setToolTip(
            "Discard ratio: the lowest fraction of fused attention entries "
            "set to 0 before rollout ([ / ] step)"
        )
        self.discard_label = _fixed_label("0.00")
        self.layer = QSpinBox()
        self.layer.setToolTip("Layer shown by raw attention (0 = first block)")
        self.head = QSpinBox()
        self.head.setMinimum(-1)
        self.head.setSpecialValueText("fused")
        self.head.setToolTip("Head shown by raw attention; 'fused' fuses all heads")
        self.start_layer = QSpinBox()
        self.start_layer.setToolTip("First layer multiplied into rollout / relevance")
        self.query_label = QLabel()
        self.query_reset = QPushButton("Class token")
        self.query_reset.setToolTip(
            "Use the class token as query again (Esc). Click a patch in "
            "the image to use that patch as the query."
        )
        self.legacy = QCheckBox("vit-explain column normalisation")
        self.legacy.setToolTip(
            "Reproduce vit-explain's a / a.sum(dim=-1) bug (divides columns), for old figures"
        )
        self.class_label = QLabel("predicted")
        self.class_label.setToolTip(
            "Target class of gradient methods: choose it in the predictions panel"
        )

        self.target = QComboBox()
        for name in TARGETS:
            self.target.addItem(TARGET_LABELS.get(name, name), name)
        self.target.setToolTip(
            "The score gradient methods differentiate: the logit (for a model ending in a "
            "softmax, the input to it; never saturates), the probability (vit-explain's and "
            "the paper's maps) or the log-probability"
        )

        # ---- display --------------------------------------------------------------------
        self.smoothing = QComboBox()
        for s in SMOOTHINGS:
            self.smoothing.addItem(SMOOTHING_LABELS[s], s)
            self.smoothing.setItemData(
                self.smoothing.count() - 1, SMOOTHING_TIPS[s], Qt.ItemDataRole.ToolTipRole
            )
        self.smoothing.setToolTip("Post-processing from the patch grid to image pixels")
        self.colormap = QComboBox()
        self.colormap.addItems(list(COLORMAPS))
        self.colormap.setToolTip("Colormap of the overlay")
        self.scaling = QComboBox()
        for name in SCALINGS:
            self.scaling.addItem(SCALING_LABELS[name], name)
        self.scaling.setToolTip(
            "Which maps share one colour range: each map its own min–max, the head/layer "
            "grid's cells one range (heads comparable), or the compare view's tiles one range "
            "(models comparable). The colour bars show the values."
        )
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setToolTip("Overlay opacity")
        self.opacity_label = _fixed_label("100%")
        self.show_overlay = QCheckBox("Show")
        self.show_overlay.setToolTip("Show or hide the saliency overlay (O)")
        self.smm_threshold = QDoubleSpinBox()
        self.smm_threshold.setRange(0.0, 1.0)
        self.smm_threshold.setSingleStep(0.05)
        self.smm_threshold.setDecimals(2)
        self.smm_threshold.setToolTip(
            "SMM keeps saliency pixels above this threshold (0.3 in "
            "the paper) and scores their IoU with the mask"
        )

        map_box = QGroupBox("Saliency")
        self._form = form = QFormLayout(map_box)
        form.addRow("Method", self.method)
        form.addRow("Head fusion", self.fusion)
        form.addRow("Aggregation", self.aggregation)
        form.addRow("Discard", row(self.discard, self.discard_label))
        form.addRow("Layer", self.layer)
        form.addRow("Head", self.head)
        form.addRow("Start layer", self.start_layer)
        form.addRow("Query", row(self.query_label, self.query_reset))
        form.addRow("Target", self.class_label)
        form.addRow("Gradient of", self.target)
        form.addRow(self.legacy)
        display_box = QGroupBox("Display")
        dform = QFormLayout(display_box)
        dform.addRow("Smoothing", self.smoothing)
        dform.addRow("Colormap", self.colormap)
        dform.addRow("Scale", self.scaling)
        # Opacity and its on/off switch share a line: the panel must fit 720 px screens.
        dform.addRow("Overlay", row(self.show_overlay, self.opacity, self.opacity_label))
        dform.addRow("SMM threshold", self.smm_threshold)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(map_box)
        lay.addWidget(display_box)
        lay.addStretch(1)

        for spin in (self.layer, self.start_layer):
            spin.setRange(0, 0)  # bounded by the model once one is open
        self.head.setRange(-1, -1)
        self.apply(ViewSettings())
        for w in (
            self.method,
            self.fusion,
            self.aggregation,
            self.target,
            self.smoothing,
            self.colormap,
            self.scaling,
        ):
            w.currentIndexChanged.connect(self._emit)
        for w in (self.discard, self.opacity, self.layer, self.head, self.start_layer):
            w.valueChanged.connect(self._emit)
        self.smm_threshold.valueChanged.connect(self._emit)
        self.legacy.toggled.connect(self._emit)
        self.show_overlay.toggled.connect(self._emit)
        self.query_reset.clicked.connect(lambda: self.set_query(0))

    # -- reading and writing the state ------------------------------------------------------
    def settings(self) -> ViewSettings:
        head = self.head.value()
        ms = MapSettings(
            method=self.method.currentData(),
            fusion=self.fusion.currentText(),
            discard_ratio=self.discard.value() / 100.0,
            layer=self.layer.value(),
            head=None if head < 0 else head,
            query=self._query,
            start_layer=self.start_layer.value(),
            legacy_normalisation=self.legacy.isChecked(),
            class_index=self._class_index,
            aggregation=self.aggregation.currentData(),
            target=self.target.currentData(),
        )
        return ViewSettings(
            map=ms,
            smoothing=self.smoothing.currentData(),
            colormap=self.colormap.currentText(),
            opacity=self.opacity.value() / 100.0,
            show_overlay=self.show_overlay.isChecked(),
            smm_threshold=round(self.smm_threshold.value(), 4),
            scaling=self.scaling.currentData(),
        )

    def apply(self, s: ViewSettings) -> None:
        """Set every widget from ``s`` (one ``changed`` signal at the end)."""
        self._blocking = True
        try:
            m = s.map
            self.method.setCurrentIndex(max(0, self.method.findData(m.method)))
            self.fusion.setCurrentText(m.fusion)
            self.aggregation.setCurrentIndex(max(0, self.aggregation.findData(m.aggregation)))
            self.target.setCurrentIndex(max(0, self.target.findData(m.target)))
            self.discard.setValue(round(m.discard_ratio * 100))
            if m.layer >= 0:
                self.layer.setValue(m.layer)
            else:
                self.layer.setValue(self.layer.maximum() + 1 + m.layer)
            self.head.setValue(-1 if m.head is None else m.head)
            self.start_layer.setValue(m.start_layer)
            self.legacy.setChecked(m.legacy_normalisation)
            self._query = m.query
            self._class_index = m.class_index
            self.smoothing.setCurrentIndex(max(0, self.smoothing.findData(s.smoothing)))
            if s.colormap in COLORMAPS:
                self.colormap.setCurrentText(s.colormap)
            self.opacity.setValue(round(s.opacity * 100))
            self.show_overlay.setChecked(s.show_overlay)
            self.smm_threshold.setValue(s.smm_threshold)
            self.scaling.setCurrentIndex(max(0, self.scaling.findData(s.scaling)))
        finally:
            self._blocking = False
        self._emit()

    def set_model_shape(
        self, layers: int, heads: int, num_prefix_tokens: int, grid: tuple[int, int]
    ) -> None:
        """Bound the layer / head / query controls by the model's shape."""
        self._blocking = True
        try:
            last = self.layer.value() == self.layer.maximum()
            self.layer.setMaximum(max(0, layers - 1))
            if last:  # keep showing the last layer when the depth changes
                self.layer.setValue(layers - 1)
            self.head.setMaximum(max(-1, heads - 1))
            self.start_layer.setMaximum(max(0, layers - 1))
            self._num_prefix = num_prefix_tokens
            self._grid = grid
            if self._query >= num_prefix_tokens + grid[0] * grid[1]:
                self._query = 0
        finally:
            self._blocking = False
        self._emit()

    def set_query(self, query: int) -> None:
        if query != self._query:
            self._query = int(query)
            self._emit()

    def query_patch(self) -> tuple[int, int] | None:
        """``(row, col)`` of the query patch, or None for a prefix token."""
        q = self._query - self._num_prefix
        if q < 0:
            return None
        return divmod(q, self._grid[1])

    def set_class_index(self, class_index: int | None, label: str = "predicted") -> None:
        self.class_label.setText(label)
        if class_index != self._class_index:
            self._class_index = class_index
            self._emit()

    def set_layer_head(self, layer: int, head: int | None, method: str = "attention") -> None:
        """Select a layer / head (from the explorer) and the method that shows it."""
        self._blocking = True
        try:
            self.method.setCurrentIndex(max(0, self.method.findData(method)))
            self.layer.setValue(layer)
            self.head.setValue(-1 if head is None else head)
        finally:
            self._blocking = False
        self._emit()

    def set_method(self, method: str) -> None:
        self.method.setCurrentIndex(max(0, self.method.findData(method)))

    def step_discard(self, delta: int) -> None:
        self.discard.setValue(self.discard.value() + delta)

    # -- internals -------------------------------------------------------------------------
    def _emit(self, *_: object) -> None:
        if self._blocking:
            return
        self.discard_label.setText(f"{self.discard.value() / 100:.2f}")
        self.opacity_label.setText(f"{self.opacity.value()}%")
        q = self.query_patch()
        self.query_label.setText(
            "class token"
            if q is None and self._query == 0
            else f"token {self._query}"
            if q is None
            else f"patch ({q[0]}, {q[1]})"
        )
        method = self.method.currentData()
        uses = {key for key, name in _FIELDS.items() if name in registry.get(method).uses}
        for key, widget in (
            ("fusion", self.fusion),
            ("discard", self.discard),
            ("layer", self.layer),
            ("head", self.head),
            ("start", self.start_layer),
            ("query", self.query_reset),
            ("legacy", self.legacy),
            ("aggregation", self.aggregation),
            ("class", self.class_label),
            ("target", self.target),
        ):
            enabled = key in uses
            if key == "fusion" and method == "attention":
                enabled = self.head.value() < 0
            widget.setEnabled(enabled)
            label = self._form.labelForField(
                widget.parentWidget() if widget in (self.discard, self.query_reset) else widget
            )
            if label is not None:
                label.setEnabled(enabled)
        self.discard_label.setEnabled(self.discard.isEnabled())
        self.query_label.setEnabled(self.query_reset.isEnabled())
        self.changed.emit()
