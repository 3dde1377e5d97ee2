"""One cell of the head/layer explorer, enlarged: the hovered (else selected, else last-layer
fused) head's attention map at the size the dock leaves under the grid.

The pixels are the grid mosaic's own (already colour-mapped by the grid's scaling rule), so the
enlarged cell and its thumbnail can never disagree; the grid's colour bar gives their values.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

__all__ = ["CellFocus"]


class CellFocus(QWidget):
    """A title and one square-pixel image view, with no mouse interaction of its own."""

    def __init__(self, background: tuple[int, int, int], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel()
        self.title.setStyleSheet("color: gray;")
        self.title.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.view_widget = pg.GraphicsLayoutWidget()
        self.view_widget.setBackground(QColor(*background))
        self.view_widget.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.view_widget.ci.setContentsMargins(0, 0, 0, 0)  # the cell uses the whole width
        self.view: pg.ViewBox = self.view_widget.addViewBox(lockAspect=True, invertY=True)
        self.view.setMouseEnabled(False, False)
        self.view.setMenuEnabled(False)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image_item)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 4, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.title)
        lay.addWidget(self.view_widget, 1)
        self.pixels: np.ndarray | None = None  # (rows, cols, 4) uint8 as shown
        self._shape: tuple[int, int] | None = None

    def square_height(self, width: int) -> int:
        """The height that shows a square cell ``width`` pixels wide under the title."""
        margins = self.layout().contentsMargins()
        return (
            width
            + self.title.sizeHint().height()
            + self.layout().spacing()
            + margins.top()
            + margins.bottom()
            + 2
        )

    def show_cell(self, rgba: np.ndarray, title: str) -> None:
        """Show ``rgba`` ((rows, cols, 4) uint8, a crop of the grid's mosaic) under ``title``."""
        self.pixels = np.ascontiguousarray(rgba)
        self.image_item.setImage(self.pixels, autoLevels=False, levels=(0, 255))
        if self._shape != rgba.shape[:2]:
            self._shape = rgba.shape[:2]
            self.view.setRange(QRectF(0, 0, rgba.shape[1], rgba.shape[0]), padding=0)
        self.title.setText(title)

    def clear(self) -> None:
        self.pixels = None
        self._shape = None
        self.image_item.clear()
        self.title.setText("")

    def image_rect(self) -> QRectF:
        """Where the enlarged cell is painted, in this widget's coordinates (for the tests)."""
        scene = self.image_item.mapRectToScene(self.image_item.boundingRect())
        view = self.view_widget.mapFromScene(scene).boundingRect()
        return QRectF(self.view_widget.mapTo(self, view.topLeft()), view.size().toSizeF())
