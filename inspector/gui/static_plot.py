"""The small read-only plots beside the maps (head entropy, token norms, the sanity curves):
the panels' dark grey, no menu, buttons or mouse zoom, a title and axis labels in light grey."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QWidget

__all__ = ["PLOT_BACKGROUND", "PLOT_TEXT", "StaticPlot"]

PLOT_BACKGROUND = (32, 33, 36)  # the head/layer grid's, the image view's canvas
PLOT_TEXT = (200, 200, 200)


class StaticPlot(pg.PlotWidget):
    """A plot that only shows: ``title`` over it, ``left`` and ``bottom`` axis labels."""

    def __init__(self, title: str, left: str, bottom: str, parent: QWidget | None = None) -> None:
        super().__init__(parent, background=QColor(*PLOT_BACKGROUND))
        item = self.getPlotItem()
        item.setMenuEnabled(False)
        item.hideButtons()
        item.setMouseEnabled(False, False)
        item.setTitle(title, color=PLOT_TEXT, size="9pt")
        for name, text in (("left", left), ("bottom", bottom)):
            ax = item.getAxis(name)
            ax.setLabel(text, color=PLOT_TEXT)
            ax.setTextPen(pg.mkPen(PLOT_TEXT))
