"""The central image view: the image with its saliency overlay, the mask contour, the query patch.

A pyqtgraph ``ViewBox`` (zoom with the wheel, pan by dragging, aspect ratio locked, y down)
holding one ``ImageItem`` with the composited RGB image the window hands it (the window blends
the overlay with :func:`inspector.core.postprocess.overlay`; this widget only draws), an
``IsocurveItem`` for the mask outline and a rectangle around the query patch.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsRectItem

__all__ = ["ImageView"]


class ImageView(pg.GraphicsLayoutWidget):
    """Draws an ``(H, W, 3)`` uint8 image; reports the pixel under the mouse and clicks.

    Signals:
        hovered(x, y): image pixel under the cursor (column, row); ``(-1, -1)`` when outside.
        clicked(x, y): left click on an image pixel (column, row).
    """

    hovered = Signal(int, int)
    clicked = Signal(int, int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setBackground(QColor(32, 33, 36))
        self.ci.layout.setContentsMargins(0, 0, 0, 0)
        self.view: pg.ViewBox = self.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.view.setDefaultPadding(0.02)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.image_item.setAutoDownsample(False)
        self.view.addItem(self.image_item)
        self.contour = pg.IsocurveItem(level=0.5, pen=pg.mkPen((80, 255, 120), width=2),
                                       axisOrder="row-major")
        self.contour.setParentItem(self.image_item)
        self.contour.setZValue(10)
        self.query_box = QGraphicsRectItem()
        pen = QPen(QColor(255, 255, 255))
        pen.setWidth(2)
        pen.setCosmetic(True)
        self.query_box.setPen(pen)
        self.query_box.setZValue(20)
        self.query_box.setVisible(False)
        self.view.addItem(self.query_box)
        self.message = pg.TextItem("", color=(200, 200, 200), anchor=(0.5, 0.5))
        self.message.setZValue(30)
        self.view.addItem(self.message)
        self._shape: tuple[int, int] | None = None
        self._rgb: np.ndarray | None = None
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.scene().sigMouseClicked.connect(self._on_mouse_clicked)
        self.setToolTip("Wheel: zoom · drag: pan · click: show that patch's attention "
                        "· double-click empty space: fit")
        self.set_message("No image")

    # -- content ---------------------------------------------------------------------------
    def set_rgb(self, rgb: np.ndarray | None) -> None:
        """Show ``(H, W, 3)`` uint8, or nothing. Fits the view when the size changed."""
        if rgb is None:
            self._rgb = None
            self.image_item.clear()
            self.contour.setData(None)
            self.query_box.setVisible(False)
            if self._shape is not None:
                self._shape = None
            return
        self._rgb = rgb
        self.image_item.setImage(rgb, autoLevels=False, levels=(0, 255))
        shape = rgb.shape[:2]
        if shape != self._shape:
            self._shape = shape
            self.fit()
        self.message.setText("")

    def displayed(self) -> np.ndarray | None:
        """The exact array last drawn (what the user sees, before zoom)."""
        return self._rgb

    def set_message(self, text: str) -> None:
        """A centred message for empty states ("No image", "Drop an image here", ...)."""
        self.message.setText(text)
        if text and self._shape is None:
            self.message.setPos(0, 0)
            self.view.setRange(QRectF(-1, -1, 2, 2), padding=0)

    def set_mask(self, mask: np.ndarray | None) -> None:
        """Outline an ``(H, W)`` bool mask in image pixels, or remove the outline."""
        if mask is None or not mask.any():
            self.contour.setData(None)
            return
        # Pad so that an object touching the border still gets a closed outline.
        data = np.pad(mask.astype(np.float32), 1)
        self.contour.setData(data)
        self.contour.setPos(-1, -1)
        self.contour.setVisible(True)

    def set_query_box(self, rect: tuple[int, int, int, int] | None) -> None:
        """Frame ``(x, y, w, h)`` in image pixels (the query patch), or hide the frame."""
        if rect is None:
            self.query_box.setVisible(False)
            return
        self.query_box.setRect(QRectF(*rect))
        self.query_box.setVisible(True)

    def fit(self) -> None:
        if self._shape is not None:
            h, w = self._shape
            self.view.setRange(QRectF(0, 0, w, h), padding=0.02)

    # -- mouse -----------------------------------------------------------------------------
    def _pixel_at(self, scene_pos: QPointF) -> tuple[int, int] | None:
        if self._shape is None:
            return None
        p = self.image_item.mapFromScene(scene_pos)
        x, y = int(np.floor(p.x())), int(np.floor(p.y()))
        h, w = self._shape
        return (x, y) if 0 <= x < w and 0 <= y < h else None

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        hit = self._pixel_at(scene_pos)
        self.hovered.emit(*(hit if hit is not None else (-1, -1)))

    def _on_mouse_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        if event.double():
            self.fit()
            return
        hit = self._pixel_at(event.scenePos())
        if hit is not None:
            self.clicked.emit(*hit)
