"""The token panel beside the head/layer grid: register tokens' attention, and the high-norm
outlier tokens of the artefact view (Darcet et al. 2024).

It only draws what the core computed: :func:`inspector.core.registers.register_attention`
(each register's attention row over the patch grid, heads averaged, and the share the output
row puts on it) and :func:`inspector.core.saliency.token_norm.capture_outliers` (patch tokens
with a robust z-score above 5). Clicking an outlier makes it the query token of the maps.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QGraphicsRectItem,
    QGridLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from inspector.core.colorscale import scale_of, to_unit
from inspector.core.postprocess import colorize
from inspector.core.registers import RegisterAttention
from inspector.core.token_norm import NormProfile

from .attention_grid import BACKGROUND
from .cell_focus import CellFocus
from .color_bar import ColorBar
from .norm_profile_plot import NormProfilePlot

__all__ = ["TokensPanel"]

THUMB = 96  # thumbnail side in pixels
PER_ROW = 4


def _pixmap(values: np.ndarray, colormap: str) -> QPixmap:
    """``(rows, cols)`` values -> a nearest-neighbour thumbnail, each map scaled to its max."""
    top = float(values.max()) if values.size else 0.0
    rgba = colorize(values / top if top > 0 else np.zeros_like(values), colormap)
    rgba = np.ascontiguousarray(rgba)
    h, w = rgba.shape[:2]
    img = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
    return QPixmap.fromImage(img).scaled(
        THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
    )


class TokensPanel(QWidget):
    """Registers' attention thumbnails and the outlier list.

    Signals:
        tokenChosen(int): an outlier was activated; its token index.

    Attributes (what is on screen, for tests and exports): ``registers`` the last
    :class:`RegisterAttention` shown (None: none), ``outliers`` the last report's entries.
    """

    tokenChosen = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.registers: RegisterAttention | None = None
        self.outliers: list[dict] = []
        self.register_title = QLabel("Register tokens")
        self.register_title.setWordWrap(True)
        self._thumbs = QWidget()
        self._thumb_grid = QGridLayout(self._thumbs)
        self._thumb_grid.setContentsMargins(0, 0, 0, 0)
        self.thumb_labels: list[QLabel] = []
        self.outlier_title = QLabel("High-norm tokens")
        self.outlier_title.setWordWrap(True)
        self.outlier_list = QListWidget()
        self.outlier_list.setToolTip(
            "Patch tokens whose output norm is an outlier in this layer (robust z > 5): the "
            "artefacts registers absorb. Double-click or Enter: use as the query token."
        )
        self.outlier_list.itemActivated.connect(self._on_activated)
        # The layer's patch-token norms as a map (Darcet et al.'s figure): the artefacts are
        # its bright isolated patches, boxed in red when they pass the outlier rule. The
        # list alone was an empty white box for a clean layer.
        self.norm_map = CellFocus(BACKGROUND)
        self.norm_map.setMinimumHeight(120)
        self.profile_plot = NormProfilePlot()
        self.norm_bar = ColorBar(Qt.Orientation.Horizontal)
        self.norm_values: np.ndarray | None = None  # (rows, cols) norms as shown
        self._boxes: list[QGraphicsRectItem] = []
        layout = QVBoxLayout(self)
        layout.addWidget(self.register_title)
        layout.addWidget(self._thumbs)
        layout.addWidget(self.outlier_title)
        layout.addWidget(self.norm_map, 3)
        layout.addWidget(self.norm_bar)
        layout.addWidget(self.profile_plot, 2)
        layout.addWidget(self.outlier_list, 1)
        self.clear()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        # The norm map square (no dark bands above and below it); the plot takes the rest.
        # Sized from the enclosing scroll area less a scroll bar, never from this panel's own
        # width: that changes when the scroll bar comes and goes, and a square tied to it
        # made the bar flip on and off for ever at some sizes.
        area = self.parentWidget()
        while area is not None and not isinstance(area, QAbstractScrollArea):
            area = area.parentWidget()
        margins = self.layout().contentsMargins()
        if area is not None:
            bar = area.style().pixelMetric(area.style().PixelMetric.PM_ScrollBarExtent)
            width = area.width() - 2 * area.frameWidth() - bar
        else:
            width = event.size().width()
        width -= margins.left() + margins.right()
        limit = self.norm_map.square_height(max(1, width))
        if self.norm_map.maximumHeight() != limit:
            self.norm_map.setMaximumHeight(limit)
        super().resizeEvent(event)

    def clear(self) -> None:
        self.set_registers(None)
        self.set_outliers(None)

    def set_registers(self, data: RegisterAttention | None, colormap: str = "viridis") -> None:
        """Show each register's attention over the patches (None or no registers: a note)."""
        self.registers = data
        for lab in self.thumb_labels:
            self._thumb_grid.removeWidget(lab)
            lab.deleteLater()
        self.thumb_labels = []
        if data is None or not data.tokens:
            self.register_title.setText("Register tokens: none in this model")
            return
        self.register_title.setText(
            f"Register tokens, layer {data.layer}: each register's attention over the "
            f"patches (heads {data.fusion}); 'out' = attention the output puts on it"
        )
        for r, token in enumerate(data.tokens):
            pix = QLabel()
            pix.setPixmap(_pixmap(data.maps[r], colormap))
            out = data.from_output[r]
            out_text = "n/a" if not np.isfinite(out) else f"{out:.3f}"
            pix.setToolTip(
                f"register {r} (token {token}): {data.to_patches[r]:.3f} of its attention on "
                f"patches; output attention on it {out_text}"
            )
            cap = QLabel(f"reg {r} · out {out_text}")
            box = QWidget()
            v = QVBoxLayout(box)
            v.setContentsMargins(0, 0, 0, 0)
            v.addWidget(pix)
            v.addWidget(cap)
            self._thumb_grid.addWidget(box, r // PER_ROW, r % PER_ROW)
            self.thumb_labels.append(box)

    def set_outliers(
        self,
        report: dict | None,
        reason: str = "",
        norms: np.ndarray | None = None,
        colormap: str = "viridis",
        profile: NormProfile | None = None,
    ) -> None:
        """Show an outlier report (:func:`capture_outliers`) and, when given, the layer's
        ``(rows, cols)`` patch norms as a map (:func:`capture_norm_view`) and every layer's
        norms (:func:`capture_norm_profile`); None: ``reason`` instead."""
        self.outlier_list.clear()
        self.outliers = [] if report is None else list(report["outliers"])
        self._show_norms(None if report is None else norms, colormap)
        shown = report is not None and profile is not None
        self.profile_plot.set_profile(
            profile if shown else None, None if report is None else report["layer"]
        )
        self.profile_plot.setVisible(shown)
        if report is None:
            self.outlier_title.setText(f"High-norm tokens: {reason or 'no capture'}")
            self.outlier_list.setVisible(False)
            return
        n = len(self.outliers)
        self.outlier_title.setText(
            f"High-norm tokens, layer {report['layer']}: {n} outlier{'s' if n != 1 else ''} "
            f"(patch median {report['patch_norm_median']:.3g})"
        )
        for o in self.outliers:
            item = QListWidgetItem(
                f"patch ({o['row']}, {o['col']}) · token {o['token']} · norm {o['norm']:.3g} "
                f"· z {o['z']:.1f}"
            )
            item.setData(Qt.ItemDataRole.UserRole, int(o["token"]))
            self.outlier_list.addItem(item)
        self.outlier_list.setVisible(n > 0)  # none: the map keeps the room

    def _show_norms(self, norms: np.ndarray | None, colormap: str) -> None:
        for box in self._boxes:
            self.norm_map.view.removeItem(box)
        self._boxes = []
        self.norm_values = None if norms is None else np.asarray(norms)
        shown = norms is not None and norms.size > 0
        self.norm_map.setVisible(shown)
        self.norm_bar.setVisible(shown)
        if not shown:
            self.norm_map.clear()
            return
        scale = scale_of([self.norm_values], units="norm")
        rgba = np.ascontiguousarray(colorize(to_unit(self.norm_values, scale), colormap))
        self.norm_map.show_cell(rgba, "Patch-token norms (red: outliers)")
        self.norm_bar.set_scale(scale, colormap)
        pen = QPen(QColor(255, 60, 60))
        pen.setCosmetic(True)
        pen.setWidth(2)
        for o in self.outliers:
            box = QGraphicsRectItem(QRectF(o["col"], o["row"], 1, 1))
            box.setPen(pen)
            self.norm_map.view.addItem(box)
            self._boxes.append(box)

    def _on_activated(self, item: QListWidgetItem) -> None:
        self.tokenChosen.emit(int(item.data(Qt.ItemDataRole.UserRole)))
