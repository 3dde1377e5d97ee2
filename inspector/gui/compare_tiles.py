"""The compare view's tiles: one model's title, square overlay, colour bar and prediction line,
and the arithmetic that sizes them (as many columns as give the largest square tiles)."""

from __future__ import annotations

import math
import re

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPainterPath, QPen
from PySide6.QtWidgets import (
    QFrame,
    QGraphicsPathItem,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from .color_bar import ColorBar
from .image_view import mask_outline_path

__all__ = ["MAX_COLUMNS", "MIN_SIDE", "Tile", "breakable", "tile_layout"]

MAX_COLUMNS = 6  # tiles per row at most
MIN_SIDE = 110  # px: below this a tile says little; the view scrolls instead
MARGIN = 4  # px inside a tile's frame, each side


def breakable(text: str) -> str:
    """``text`` with zero-width spaces after ``-``, ``_``, ``/`` and ``.`` so that a word-wrapped
    label can break a long file name instead of clipping it."""
    return re.sub(r"([-_/.])", "\\1\u200b", text)


def tile_layout(n: int, width: int, height: int, text_height: int, spacing: int = 6):
    """``(columns, side)``: the columns (1..MAX_COLUMNS) that give ``n`` square images the
    largest side in a ``width`` x ``height`` area, each tile also needing ``text_height`` px
    of text under or over its image; ``side`` is at least :data:`MIN_SIDE` (the view then
    scrolls)."""
    if n <= 0:
        return 1, MIN_SIDE
    best = (1, -1)
    for c in range(1, min(MAX_COLUMNS, n) + 1):
        rows = math.ceil(n / c)
        by_width = (width - spacing * (c - 1)) // c - 2 * MARGIN - 2
        by_height = (height - spacing * (rows - 1)) // rows - text_height - 2 * MARGIN - 2
        side = min(by_width, by_height)
        if side > best[1] or (side == best[1] and c > best[0]):
            best = (c, side)
    columns, side = best
    if side < MIN_SIDE:
        # Too many for the area: keep the widest row of tiles of the minimum size, then scroll.
        columns = max(1, min(MAX_COLUMNS, n, (width + spacing) // (MIN_SIDE + 2 * MARGIN + 8)))
        side = max(MIN_SIDE, (width - spacing * (columns - 1)) // columns - 2 * MARGIN - 2)
    return columns, int(side)


class Tile(QFrame):
    """One model: title, square overlay (with the mask contour), its colour bar, and the
    prediction / target / SMM line."""

    def __init__(self, path: str, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path = path
        self.result = None  # compare_view.CellResult once shown
        self.setFrameShape(QFrame.Shape.StyledPanel)
        # As tall as its content: a grid row never stretches a tile (empty space under text).
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Maximum)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(MARGIN, MARGIN, MARGIN, MARGIN)
        lay.setSpacing(2)
        self.title = QLabel()
        self.title.setToolTip(path)
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title.setWordWrap(True)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.set_title(title)
        lay.addWidget(self.title)
        self.plot = pg.GraphicsLayoutWidget()
        self.plot.ci.setContentsMargins(0, 0, 0, 0)
        self.plot.setBackground(QColor(32, 33, 36))
        self.view = self.plot.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image_item)
        self.contour = QGraphicsPathItem(self.image_item)  # the mask outline, pixel edges
        pen = QPen(QColor(80, 255, 120))
        pen.setWidthF(2)
        pen.setCosmetic(True)
        self.contour.setPen(pen)
        lay.addWidget(self.plot, 0, Qt.AlignmentFlag.AlignHCenter)
        self.bar = ColorBar(Qt.Orientation.Horizontal)
        self.bar.setVisible(False)
        lay.addWidget(self.bar)
        self.info = QLabel("loading…")
        self.info.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.info)
        lay.addStretch(1)
        self.set_side(MIN_SIDE)

    def set_title(self, text: str) -> None:
        self.title_text = text
        self.title.setText(breakable(text))

    @staticmethod
    def text_height(fm_height: int, bar_height: int) -> int:
        """Px a tile needs besides its image: two lines of title, the bar, two lines of info."""
        return 4 * fm_height + bar_height + 4 * 2

    def set_side(self, side: int) -> None:
        """Square image of ``side`` px; the tile is exactly that wide (labels wrap to it)."""
        self.plot.setFixedSize(side, side)
        self.setFixedWidth(side + 2 * MARGIN + 2)

    def show_result(self, res, mask: np.ndarray | None, colormap: str, bar: bool) -> None:
        self.result = res
        if res.error:
            self.info.setText(f"⚠ {breakable(res.error)}")
            self.info.setStyleSheet("color: #c62828;")
            self.image_item.clear()
            self.contour.setPath(QPainterPath())
            self.bar.setVisible(False)
            return
        self.info.setStyleSheet("")
        if res.overlay is None:
            self.info.setText("no image")
            self.image_item.clear()
            self.contour.setPath(QPainterPath())
            self.bar.setVisible(False)
            return
        self.image_item.setImage(res.overlay, autoLevels=False, levels=(0, 255))
        self.view.autoRange(padding=0)
        if mask is not None and mask.shape == res.overlay.shape[:2]:
            self.contour.setPath(mask_outline_path(mask))
        else:
            self.contour.setPath(QPainterPath())
        self.bar.set_scale(res.scale, colormap)
        self.bar.setVisible(bar and res.scale is not None)
        text = f"{res.class_name}  {100.0 * res.probability:.1f}%"
        if res.target_class != res.class_index and res.target_name:
            text += f"  ·  target {res.target_name}"
        if res.has_mask:
            text += "  ·  SMM " + ("undefined" if res.smm is None else f"{res.smm:.3f}")
        self.info.setText(text)

    def overlay(self) -> np.ndarray | None:
        return None if self.result is None else self.result.overlay
