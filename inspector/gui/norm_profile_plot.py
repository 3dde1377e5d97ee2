"""Patch-token norms per layer, under the tokens panel's norm map: where the high-norm artefacts
of Darcet et al. (2024) appear with depth.

One dot per patch and layer (:class:`inspector.core.token_norm.NormProfile`, the capture's own
block-output norms), each layer's median as a line and the outlier rule's bound dashed; dots
above the bound are red. The layer the panel shows is marked. The axis is log10 of the norm:
artefacts sit one or two orders of magnitude above the rest.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QWidget

from inspector.core.token_norm import NormProfile

from .static_plot import StaticPlot

__all__ = ["NormProfilePlot"]


class NormProfilePlot(StaticPlot):
    """``set_profile(NormProfile | None, layer)``: the dots, the median, the bound."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Patch-token norm per layer", "log10 norm", "layer", parent)
        item = self.getPlotItem()
        self.dots = pg.ScatterPlotItem(size=4, pen=pg.mkPen(None))
        self.median = pg.PlotCurveItem(pen=pg.mkPen((255, 200, 80), width=2))
        self.bound = pg.PlotCurveItem(pen=pg.mkPen((255, 90, 90), style=Qt.PenStyle.DashLine))
        self.marker = pg.InfiniteLine(angle=90, pen=pg.mkPen((170, 170, 170)))
        for part in (self.dots, self.median, self.bound, self.marker):
            item.addItem(part)
        self.setMinimumHeight(110)
        self.profile: NormProfile | None = None
        self.outlier_count = 0  # dots drawn red (above their layer's bound)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        # Small: the tokens panel's scroll area sizes the panel by its preferred height, and
        # pyqtgraph's default (640 x 480) made the panel scroll on a 1080-line screen.
        return QSize(260, 160)

    def set_profile(self, profile: NormProfile | None, layer: int | None) -> None:
        self.profile = profile
        if profile is None or profile.patches.size == 0:
            self.dots.setData([], [])
            self.median.setData([], [])
            self.bound.setData([], [])
            self.marker.setVisible(False)
            self.outlier_count = 0
            return
        layers, patches = profile.patches.shape  # (L, P)
        xs = np.repeat(np.arange(layers, dtype=float), patches)
        ys = profile.patches.reshape(-1).astype(float)
        high = (profile.patches > profile.threshold[:, None]).reshape(-1)
        self.outlier_count = int(high.sum())
        normal, red = pg.mkBrush(120, 190, 255, 150), pg.mkBrush(255, 70, 70, 230)
        keep = ys > 0  # log10 of the norms (a zero norm has no place on the axis)
        self.dots.setData(
            xs[keep], np.log10(ys[keep]), brush=[red if h else normal for h in high[keep]]
        )
        x = np.arange(layers, dtype=float)
        self.median.setData(x, np.log10(np.maximum(profile.median, 1e-12)))
        finite = np.isfinite(profile.threshold)
        self.bound.setData(x[finite], np.log10(np.maximum(profile.threshold[finite], 1e-12)))
        if layer is not None:
            self.marker.setValue(layer % layers)
        self.marker.setVisible(layer is not None)
        self.getPlotItem().getAxis("bottom").setTicks([[(i, str(i)) for i in range(layers)]])
