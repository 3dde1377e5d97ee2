"""The head/layer explorer: a layers x heads grid of attention thumbnails for the current query.

Rows are layers (first block at the top); columns are the heads, then the heads fused, then the
rollout of the layers up to that row (:func:`inspector.core.explain.explorer_maps` computes them).
Cells are coloured by the user's scaling rule (:func:`inspector.core.colorscale.grid_scales`:
each cell its own min..max, or shared ranges); the colour bars under the grid give the values:
one bar for the head and fused columns and one for rollout when ranges are shared, the hovered
(else selected) cell's own range otherwise. The whole grid is drawn as **one** mosaic image
(one ``ImageItem``, colour-mapped with :func:`inspector.core.postprocess.colorize`), so a
12 x 12 ViT-B grid is a single texture upload instead of 168 items. Hover shows the head's
entropy and the value under the cursor; a click selects that layer / head in the main view.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from inspector.core import export as core_export
from inspector.core.colorscale import GridScales, grid_scales
from inspector.core.explain import ExplorerMaps
from inspector.core.figure import grid_figure
from inspector.core.postprocess import colorize

from .cell_focus import CellFocus
from .color_bar import ColorBar
from .entropy_plot import EntropyPlot
from .static_plot import PLOT_BACKGROUND

__all__ = ["AttentionGrid", "GridLayout"]

PAD = 1  # pixels between cells (in map pixels)
GAP = 3  # extra gap before the fused / rollout columns
BACKGROUND = PLOT_BACKGROUND  # the grid, its enlarged cell and its plots share one grey
FOCUS_MIN_HEIGHT = 140  # below this the enlarged cell is hidden and the grid takes the dock
ENTROPY_MIN_HEIGHT = 130  # the entropy plot shows when this much is left under the cell
UNLIMITED = 16_777_215  # QWIDGETSIZE_MAX


class GridLayout:
    """Where each cell sits in the mosaic (pure bookkeeping, in mosaic pixels)."""

    def __init__(self, layers: int, heads: int, rows: int, cols: int) -> None:
        self.layers, self.heads, self.rows, self.cols = layers, heads, rows, cols
        self.columns = heads + 2
        self.x0 = [j * (cols + PAD) + (GAP if j >= heads else 0) for j in range(self.columns)]
        self.y0 = [i * (rows + PAD) for i in range(layers)]
        self.width = self.x0[-1] + cols
        self.height = self.y0[-1] + rows

    def column_kind(self, j: int) -> str:
        return "head" if j < self.heads else ("fused" if j == self.heads else "rollout")

    def column_label(self, j: int) -> str:
        return f"h{j}" if j < self.heads else ("fused" if j == self.heads else "rollout")

    def cell_at(self, x: float, y: float) -> tuple[int, int, int, int] | None:
        """``(layer, column, row_in_cell, col_in_cell)`` of mosaic point (x, y), or None in a
        gap."""
        xi, yi = int(np.floor(x)), int(np.floor(y))
        hits = [j for j, x0 in enumerate(self.x0) if x0 <= xi < x0 + self.cols]
        if not hits:
            return None
        j = hits[0]
        x0 = self.x0[j]
        layer, r = divmod(yi, self.rows + PAD)
        if not 0 <= layer < self.layers or r >= self.rows or yi < 0:
            return None
        return layer, j, r, xi - x0

    def cell_rect(self, layer: int, j: int) -> QRectF:
        return QRectF(self.x0[j], self.y0[layer], self.cols, self.rows)


class AttentionGrid(QWidget):
    """Signals:
    cellClicked(layer, kind, head): ``kind`` is ``head``, ``fused`` or ``rollout``
        (``head`` is -1 for the last two).
    hoverText(str): a description of the cell under the cursor.
    """

    cellClicked = Signal(int, str, int)
    hoverText = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot_widget = pg.GraphicsLayoutWidget()
        self.plot_widget.setBackground(QColor(*BACKGROUND))
        self.plot: pg.PlotItem = self.plot_widget.addPlot()
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.invertY(True)
        self.plot.setAspectLocked(True)
        self.plot.showAxis("top")
        self.plot.hideAxis("bottom")
        for name in ("left", "top"):
            ax = self.plot.getAxis(name)
            ax.setStyle(tickLength=0)
            ax.setTextPen(pg.mkPen((200, 200, 200)))
            ax.setPen(pg.mkPen(None))
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image_item)
        self.selection = QGraphicsRectItem()
        pen = QPen(QColor(255, 255, 255))
        pen.setWidth(2)
        pen.setCosmetic(True)
        self.selection.setPen(pen)
        self.selection.setVisible(False)
        self.plot.addItem(self.selection)
        self.info = QLabel("Heads × layers: open a checkpoint and an image.")
        self.info.setWordWrap(True)
        self.info.setStyleSheet("color: gray;")
        # Colour bars with the cells' real values (attention probabilities, rollout weights).
        self.bar = ColorBar(Qt.Orientation.Horizontal)
        self.rollout_bar = ColorBar(Qt.Orientation.Horizontal)
        bars = QHBoxLayout()
        bars.setContentsMargins(0, 0, 0, 0)
        bars.addWidget(self.bar, 2)
        bars.addWidget(self.rollout_bar, 1)
        self.bar.setVisible(False)
        self.rollout_bar.setVisible(False)
        # The hovered (else selected) cell enlarged, in the height the grid leaves: a tall
        # side dock would otherwise be mostly empty around a grid that fits its width.
        self.focus = CellFocus(BACKGROUND)
        self.focus.hide()
        self.entropy_plot = EntropyPlot()
        self.entropy_plot.hide()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.plot_widget, 1)
        lay.addLayout(bars)
        lay.addWidget(self.focus, 1)
        lay.addWidget(self.entropy_plot, 1)
        lay.addWidget(self.info)
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.setInterval(0)  # after the layouts have placed the plot's view box
        self._fit_timer.timeout.connect(self._fit)
        self.setToolTip(
            "Rows: layers. Columns: heads, the heads fused, and the rollout up to "
            "that layer, for the current query token. Hover: entropy and value; "
            "click: show it in the main view."
        )
        self.data: ExplorerMaps | None = None
        self.layout_: GridLayout | None = None
        self.mosaic: np.ndarray | None = None
        self.scales: GridScales | None = None
        self.colormap = "viridis"
        self._selected: tuple[int, int] | None = None  # (layer, column) framed
        self._hovered: tuple[int, int] | None = None
        self.last_render_ms = 0.0
        self.plot_widget.scene().sigMouseMoved.connect(self._on_moved)
        self.plot_widget.scene().sigMouseClicked.connect(self._on_clicked)
        self._show_axes(False)

    # -- content ---------------------------------------------------------------------------
    def set_data(
        self, data: ExplorerMaps, colormap: str = "viridis", scaling: str = "per-map"
    ) -> None:
        """Draw every cell of ``data`` as one mosaic image, coloured by the ``scaling`` rule
        (one of :data:`inspector.core.colorscale.SCALINGS`)."""
        t0 = time.perf_counter()
        L, C, rows, cols = data.maps.shape
        layout = GridLayout(L, C - 2, rows, cols)
        scales = grid_scales(data.raw, C - 2, scaling)  # unit: (L, C, rows, cols) in [0, 1]
        values = np.full((layout.height, layout.width), np.nan, dtype=np.float32)
        for j, x0 in enumerate(layout.x0):
            # (L, rows, cols) -> the column of cells, one block per layer
            for i, y0 in enumerate(layout.y0):
                values[y0 : y0 + rows, x0 : x0 + cols] = scales.unit[i, j]
        rgba = colorize(values, colormap)
        rgba[np.isnan(values)] = (*BACKGROUND, 255)
        new_shape = self.layout_ is None or (self.layout_.height, self.layout_.width) != (
            layout.height,
            layout.width,
        )
        self.data, self.layout_, self.mosaic = data, layout, rgba
        self.scales, self.colormap = scales, colormap
        if self._hovered is not None and not (
            self._hovered[0] < L and self._hovered[1] < layout.columns
        ):
            self._hovered = None
        self.entropy_plot.set_entropy(data.entropy, data.max_entropy)
        self._update_bars()  # the bars, the focused cell and the entropy plot's layer
        self.image_item.setImage(rgba, autoLevels=False, levels=(0, 255))
        self._show_axes(True)
        if new_shape:
            self._set_ticks(layout)
            self.plot.setRange(QRectF(0, 0, layout.width, layout.height), padding=0.01)
            self._fit_timer.start()
        q = "class token" if data.query == 0 else f"token {data.query}"
        self.info.setText(
            f"Query: {q} · fused by {data.fusion} · entropy max log T = {data.max_entropy:.2f} nats"
        )
        self.last_render_ms = (time.perf_counter() - t0) * 1000

    def _show_axes(self, show: bool) -> None:
        for name in ("left", "top"):
            self.plot.showAxis(name, show)

    def _update_bars(self) -> None:
        """The bars' values: the shared ranges, or the own range of the hovered (else the
        selected, else the last layer's fused) cell."""
        sc, lay = self.scales, self.layout_
        if sc is None or lay is None:
            self.bar.setVisible(False)
            self.rollout_bar.setVisible(False)
            self.focus.clear()
            self.entropy_plot.clear_plot()
            return
        if sc.shared:
            self.bar.set_scale(sc.cell(0, 0), self.colormap, "heads and fused: one range")
            self.rollout_bar.set_scale(sc.cell(0, lay.columns - 1), self.colormap, "rollout")
            self.rollout_bar.setVisible(True)
        else:
            layer, j = self._hovered or self._selected or (lay.layers - 1, lay.heads)
            name = {"head": f"h{j}", "fused": "fused", "rollout": "rollout"}[lay.column_kind(j)]
            note = f"L{layer} {name}; each cell its own range"
            self.bar.set_scale(sc.cell(layer, j), self.colormap, note)
            self.rollout_bar.setVisible(False)
        self.bar.setVisible(True)
        self._update_focus()

    def bar_cell(self) -> tuple[int, int] | None:
        """The (layer, column) whose own range the bar shows under ``per-map`` (None when
        ranges are shared or the grid is empty)."""
        if self.scales is None or self.scales.shared or self.layout_ is None:
            return None
        return self._hovered or self._selected or (self.layout_.layers - 1, self.layout_.heads)

    def clear(self) -> None:
        self.scales = None
        self._hovered = self._selected = None
        self._update_bars()
        self.data = self.layout_ = self.mosaic = None
        self.image_item.clear()
        self._show_axes(False)
        self.selection.setVisible(False)
        self.info.setText("Heads × layers: open a checkpoint and an image.")
        self._fit_timer.start()

    def is_empty(self) -> bool:
        return self.data is None

    def set_selection(self, layer: int | None, head: int | None) -> None:
        """Frame the cell of ``layer`` / ``head`` (``head`` None = the fused column)."""
        if self.layout_ is None or layer is None or not 0 <= layer < self.layout_.layers:
            self.selection.setVisible(False)
            self._selected = None
            self._update_bars()
            return
        j = self.layout_.heads if head is None else head
        if not 0 <= j < self.layout_.columns:
            self.selection.setVisible(False)
            self._selected = None
            self._update_bars()
            return
        self.selection.setRect(self.layout_.cell_rect(layer, j).adjusted(-0.5, -0.5, 0.5, 0.5))
        self.selection.setVisible(True)
        self._selected = (layer, j)
        self._update_bars()

    def cell_center_scene(self, layer: int, column: int) -> QPointF:
        """Scene position of a cell's centre (for tests and keyboard navigation)."""
        r = self.layout_.cell_rect(layer, column)
        return self.image_item.mapToScene(r.center())

    def export_png(
        self, path: Path, metadata: dict, *, overwrite: bool = False, scale: int = 6
    ) -> Path:
        """The mosaic enlarged ``scale`` times (nearest neighbour) with its layer and head
        labels (:func:`inspector.core.figure.grid_figure`), settings in its metadata."""
        if self.mosaic is None or self.data is None:
            raise ValueError("the grid is empty")
        lay, sc = self.layout_, self.scales
        if sc.shared:  # the real values of the two shared ranges the cells are coloured by
            bars = [
                ("attention (heads and fused)", sc.cell(0, 0)),
                ("rollout weight", sc.cell(0, lay.columns - 1)),
            ]
            note = ""
        else:  # each cell its own range: a bar would lie; every range is in the metadata
            bars = []
            note = "each cell is scaled to its own min..max (ranges in the file's metadata)"
        fig = grid_figure(
            self.mosaic,
            scale=scale,
            column_centres=[lay.x0[j] + lay.cols / 2 for j in range(lay.columns)],
            column_labels=[lay.column_label(j) for j in range(lay.columns)],
            row_centres=[lay.y0[i] + lay.rows / 2 for i in range(lay.layers)],
            row_labels=[f"L{i}" for i in range(lay.layers)],
            colorbars=bars,
            colormap=self.colormap,
            note=note,
        )
        meta = {
            **metadata,
            "grid": {
                **fig.meta,
                "rows": "layers",
                "row_labels": fig.meta["rows"],
                "query": self.data.query,
                "fusion": self.data.fusion,
                "scaling": "shared" if sc.shared else "per-map",
                # (L, H + 2) each: the value colour 0 and colour 1 stand for, cell by cell
                "cell_lo": sc.lo.tolist(),
                "cell_hi": sc.hi.tolist(),
            },
        }
        return core_export.save_png(path, np.ascontiguousarray(fig.rgb), meta, overwrite=overwrite)

    # -- fitting the dock ------------------------------------------------------------------
    def focus_cell(self) -> tuple[int, int] | None:
        """The (layer, column) shown enlarged: hovered, else selected, else the last fused."""
        if self.layout_ is None:
            return None
        return self._hovered or self._selected or (self.layout_.layers - 1, self.layout_.heads)

    def _update_focus(self) -> None:
        cell, lay = self.focus_cell(), self.layout_
        if cell is None or self.mosaic is None:
            self.focus.clear()
            self.entropy_plot.clear_plot()
            return
        layer, j = cell
        self.entropy_plot.set_layer(layer)
        x0, y0 = lay.x0[j], lay.y0[layer]
        how = "hovered" if cell == self._hovered else ("selected" if cell == self._selected else "")
        name = {"head": f"head {j}", "fused": "heads fused", "rollout": "rollout"}[
            lay.column_kind(j)
        ]
        title = f"Layer {layer}, {name}" + (f" ({how})" if how else "")
        self.focus.show_cell(self.mosaic[y0 : y0 + lay.rows, x0 : x0 + lay.cols], title)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt name
        super().resizeEvent(event)
        self._fit_timer.start()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt name
        super().showEvent(event)
        self._fit_timer.start()

    def _fit(self) -> None:
        """Give the grid the height its width calls for; under it, the focused cell (square)
        and then the entropy plot share what is left. When little is left the grid takes it."""
        lay = self.layout_
        vb = self.plot.getViewBox()
        extras = (self.focus, self.entropy_plot)
        if lay is None or vb.width() <= 0:
            for w in extras:
                w.hide()
            self.plot_widget.setMaximumHeight(UNLIMITED)
            return
        spacing = self.layout().spacing()
        # The view box's width does not depend on the widget's height: this is stable.
        chrome = self.plot_widget.height() - vb.height()  # the top axis and the margins
        need = int(np.ceil(vb.width() * lay.height / lay.width * 1.02 + chrome)) + 1
        others = self.height() - self.plot_widget.height()
        for w in extras:
            if not w.isHidden():
                others -= w.height() + spacing
        spare = self.height() - others - need
        show_focus = spare >= FOCUS_MIN_HEIGHT + spacing
        # A square cell: the view's width plus the title line; smaller when that would hide
        # the entropy plot (a wide dock: the square cell alone filled a 1080 px column).
        focus_full = self.focus.square_height(self.plot_widget.width())
        focus_h = min(focus_full, spare - 2 * spacing - ENTROPY_MIN_HEIGHT)
        show_entropy = show_focus and focus_h >= FOCUS_MIN_HEIGHT
        limits = (
            (self.plot_widget, need if show_focus else UNLIMITED),
            (self.focus, focus_h if show_entropy else UNLIMITED),
        )
        for widget, limit in limits:
            if widget.maximumHeight() != limit:
                widget.setMaximumHeight(limit)
        for widget, show in ((self.focus, show_focus), (self.entropy_plot, show_entropy)):
            if widget.isHidden() == show:
                widget.setVisible(show)

    # -- internals -------------------------------------------------------------------------
    def _set_ticks(self, layout: GridLayout) -> None:
        step = 1 if layout.columns <= 16 else 2
        top = [
            (
                layout.x0[j] + layout.cols / 2,
                layout.column_label(j)
                if j < layout.heads
                else {"fused": "F", "rollout": "R"}[layout.column_kind(j)],
            )
            for j in range(0, layout.columns)
            if j % step == 0 or j >= layout.heads
        ]
        left = [(layout.y0[i] + layout.rows / 2, f"L{i}") for i in range(layout.layers)]
        self.plot.getAxis("top").setTicks([top])
        self.plot.getAxis("left").setTicks([left])

    def describe(self, layer: int, j: int, r: int, c: int) -> str:
        """The hover text of cell (layer, column j) at map pixel (r, c)."""
        d, lay = self.data, self.layout_
        kind = lay.column_kind(j)
        raw = float(d.raw[layer, j, r, c])
        where = f"patch ({r}, {c})"
        if kind == "head":
            ent = float(d.entropy[layer, j])
            return (
                f"Layer {layer}, head {j}: entropy {ent:.3f} nats "
                f"({ent / d.max_entropy:.0%} of uniform) · attention to {where} {raw:.4f}"
            )
        if kind == "fused":
            return f"Layer {layer}, heads fused ({d.fusion}) · attention to {where} {raw:.4f}"
        return f"Rollout of layers 0–{layer} · weight of {where} {raw:.4f}"

    def _hit(self, scene_pos: QPointF) -> tuple[int, int, int, int] | None:
        if self.layout_ is None:
            return None
        p = self.image_item.mapFromScene(scene_pos)
        return self.layout_.cell_at(p.x(), p.y())

    def _on_moved(self, scene_pos: QPointF) -> None:
        hit = self._hit(scene_pos)
        if hit is None:
            return
        text = self.describe(*hit)
        if self._hovered != hit[:2]:
            self._hovered = hit[:2]
            self._update_bars()
        self.info.setText(text)
        self.hoverText.emit(text)

    def _on_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        hit = self._hit(event.scenePos())
        if hit is None:
            return
        layer, j = hit[0], hit[1]
        kind = self.layout_.column_kind(j)
        self.cellClicked.emit(layer, kind, j if kind == "head" else -1)
