"""The sanity dialog's two views: the core's figure fitted to the dialog's width, and Spearman's
ρ and SSIM against the randomisation step (the curves of Adebayo et al. 2018, Fig. 2).

Only drawing: the figure is ``core.sanity.sanity_figure``'s pixels, the curves the result's
``per_layer()`` rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from .static_plot import PLOT_TEXT, StaticPlot

__all__ = ["FittedFigure", "SanityCurves"]
MAX_ZOOM = 2.0  # never blown up further: the tiles are small maps, not photographs


class FittedFigure(QLabel):
    """An RGB figure at the label's width (smoothly scaled, aspect kept), and no taller than
    that needs: the dialog scrolled sideways through the native-size figure before."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.source: QPixmap | None = None

    def set_rgb(self, rgb: np.ndarray) -> None:
        """Show ``(H, W, 3)`` uint8."""
        rgb = np.ascontiguousarray(rgb)
        h, w = rgb.shape[:2]
        image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        self.source = QPixmap.fromImage(image)
        self.updateGeometry()
        self._fit()

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt override
        return self.source is not None

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt override
        if self.source is None:
            return 0
        scale = min(MAX_ZOOM, width / max(1, self.source.width()))
        return max(1, round(self.source.height() * scale))

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        if self.source is None:
            return QSize(400, 120)
        return QSize(self.source.width(), self.source.height())

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if self.source is None:
            return
        width = min(self.width(), round(self.source.width() * MAX_ZOOM))
        if self.pixmap().isNull() or self.pixmap().width() != width:
            self.setPixmap(
                self.source.scaledToWidth(max(1, width), Qt.TransformationMode.SmoothTransformation)
            )


class SanityCurves(StaticPlot):
    """ρ and SSIM per step; the x axis names the layer randomised last (its index when the
    names would not fit)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(
            "Similarity to the trained model's map", "similarity", "randomised up to", parent
        )
        item = self.getPlotItem()
        item.setYRange(-1.0, 1.0)
        legend = item.addLegend(offset=(-10, -10), labelTextColor=PLOT_TEXT)
        sym = {"symbol": "o", "symbolSize": 6}
        self.rho = item.plot(
            name="Spearman ρ", pen=pg.mkPen("#1f77b4", width=2), symbolBrush="#1f77b4", **sym
        )
        self.ssim = item.plot(
            name="SSIM", pen=pg.mkPen("#ff7f0e", width=2), symbolBrush="#ff7f0e", **sym
        )
        self.legend = legend
        self.setMinimumSize(220, 160)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(360, 200)

    def set_rows(self, rows: list[dict]) -> None:
        """The ``per_layer()`` rows of a sanity result (``spearman`` None: a constant map,
        left out of the ρ curve)."""
        x = np.arange(len(rows), dtype=float)
        rho = np.array([np.nan if r["spearman"] is None else r["spearman"] for r in rows])
        keep = np.isfinite(rho)
        self.rho.setData(x[keep], rho[keep])
        self.ssim.setData(x, np.array([r["ssim"] for r in rows], dtype=float))
        names = [str(r["layer"]) for r in rows]
        axis = self.getPlotItem().getAxis("bottom")
        room = self.width() / max(1, len(rows))
        fits = max(map(len, names), default=0) * self.fontMetrics().averageCharWidth() < room
        axis.setTicks([[(i, n if fits else str(i)) for i, n in enumerate(names)]])
