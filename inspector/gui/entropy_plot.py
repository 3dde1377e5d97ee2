"""Head entropy per layer, under the head/layer explorer: where heads focus and where they spread.

One dot per head and layer (the entropy in nats of the head's attention row of the current query,
:attr:`inspector.core.explain.ExplorerMaps.entropy`), the heads' mean as a line, and ``log T``
(a uniform row) as a dashed line. The selected layer is marked. Collapsed or uniform heads, the
usual suspects behind a flat map, stand out at a glance.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from .static_plot import StaticPlot

__all__ = ["EntropyPlot"]


class EntropyPlot(StaticPlot):
    """``set_entropy((L, H) nats, log T)``; ``set_layer(layer | None)`` marks a layer."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Head entropy per layer", "nats", "layer", parent)
        item = self.getPlotItem()
        self.heads = pg.ScatterPlotItem(
            size=6, pen=pg.mkPen(None), brush=pg.mkBrush(120, 190, 255, 170)
        )
        self.mean = pg.PlotCurveItem(pen=pg.mkPen((255, 200, 80), width=2))
        self.uniform = pg.InfiniteLine(
            angle=0, pen=pg.mkPen((170, 170, 170), style=Qt.PenStyle.DashLine)
        )
        self.layer_line = pg.InfiniteLine(angle=90, pen=pg.mkPen((255, 255, 255, 110), width=1))
        for it in (self.uniform, self.layer_line, self.mean, self.heads):
            item.addItem(it)
        self.uniform.hide()
        self.layer_line.hide()
        self.entropy: np.ndarray | None = None  # (L, H) as plotted
        self.setMinimumHeight(0)

    def set_entropy(self, entropy: np.ndarray, max_entropy: float) -> None:
        """Plot ``entropy`` ((L, H) nats) against the uniform row's ``max_entropy``."""
        e = np.asarray(entropy, dtype=np.float64)
        L, H = e.shape
        layers = np.repeat(np.arange(L), H)  # (L*H,) the dots' x, layer by layer
        self.heads.setData(layers, e.reshape(-1))
        self.mean.setData(np.arange(L), e.mean(axis=1))
        self.uniform.setValue(max_entropy)
        self.uniform.show()
        item = self.getPlotItem()
        item.disableAutoRange()
        item.setXRange(-0.5, L - 0.5, padding=0)
        item.setYRange(0, max_entropy * 1.05, padding=0)
        item.getAxis("bottom").setTicks([[(i, str(i)) for i in range(L)]] if L <= 16 else None)
        self.entropy = e

    def set_layer(self, layer: int | None) -> None:
        if layer is None or self.entropy is None:
            self.layer_line.hide()
            return
        self.layer_line.setValue(layer)
        self.layer_line.show()

    def clear_plot(self) -> None:
        self.heads.clear()
        self.mean.clear()
        self.uniform.hide()
        self.layer_line.hide()
        self.entropy = None
