"""The central image view: the image with its saliency overlay, the mask outline, the query patch,
and the mask tools (brush and box).

A pyqtgraph ``ViewBox`` (zoom with the wheel, pan by dragging, aspect ratio locked, y down)
holding one :class:`RgbImageItem` with the composited RGB image the window hands it (the window
blends the overlay with :func:`inspector.core.postprocess.overlay`; this widget only draws), the
mask outline along pixel edges, and a rectangle around the query patch.

Speed: the image is drawn from a ``QImage`` in the backing store's own 32-bit format
(``Format_RGB32``), nearest neighbour, so a repaint is one ``drawImage`` with no level scaling,
no lookup table and no format conversion (pyqtgraph's ``ImageItem`` with an RGB888 image cost
~4 ms more per frame on a 2-core CPU).

Tools (:meth:`ImageView.set_tool`):

* ``query`` - a click reports the pixel (the window makes that patch the query token).
* ``brush`` - a left drag paints, a right drag erases: :attr:`ImageView.brushed` carries the
  pixels the cursor passed over, with no gaps between two mouse events (the segment between
  them is sampled at every pixel step).
* ``box`` - a drag draws a rectangle; :attr:`ImageView.boxDrawn` gives its inclusive corners.

The middle button and the wheel pan and zoom in every tool.
"""

from __future__ import annotations

import sys

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QImage, QPainterPath, QPen
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsObject,
    QGraphicsPathItem,
    QGraphicsRectItem,
)

__all__ = ["ImageView", "RgbImageItem", "TOOLS", "mask_outline_path", "segment_pixels"]

TOOLS: tuple[str, ...] = ("query", "brush", "box")
# Format_RGB32 is 0xffRRGGBB in native byte order: bytes B, G, R, 255 on little-endian machines.
_LITTLE_ENDIAN = sys.byteorder == "little"


class RgbImageItem(QGraphicsObject):
    """An ``(H, W, 3)`` uint8 image drawn pixel-exact in item coordinates ``[0, W] x [0, H]``."""

    def __init__(self) -> None:
        super().__init__()
        self._buffer: np.ndarray | None = None  # keeps the QImage's memory alive
        self._qimage: QImage | None = None
        self._w = self._h = 0

    def set_rgb(self, rgb: np.ndarray | None) -> None:
        if rgb is None:
            self._buffer = self._qimage = None
            self.update()
            return
        h, w = rgb.shape[:2]
        if _LITTLE_ENDIAN:
            buf = np.empty((h, w, 4), dtype=np.uint8)
            buf[..., 0] = rgb[..., 2]
            buf[..., 1] = rgb[..., 1]
            buf[..., 2] = rgb[..., 0]
            buf[..., 3] = 255
            fmt = QImage.Format.Format_RGB32
        else:
            buf = np.empty((h, w, 4), dtype=np.uint8)
            buf[..., :3] = rgb
            buf[..., 3] = 255
            fmt = QImage.Format.Format_RGBX8888
        self._buffer = buf
        self._qimage = QImage(buf.data, w, h, 4 * w, fmt)
        if (w, h) != (self._w, self._h):
            self.prepareGeometryChange()
            self._w, self._h = w, h
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        return QRectF(0, 0, self._w, self._h)

    def paint(self, painter, option, widget=None) -> None:
        if self._qimage is not None:
            painter.drawImage(QRectF(0, 0, self._w, self._h), self._qimage)


def _edge_runs(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of consecutive True along each row of ``(R, C)`` bool: ``(row, start, stop)``
    with ``stop`` exclusive (row-major order)."""
    d = np.diff(np.pad(edges, ((0, 0), (1, 1))).astype(np.int8), axis=1)  # (R, C + 1)
    rows, starts = np.nonzero(d == 1)  # both in row-major order, so they pair up
    _, stops = np.nonzero(d == -1)
    return rows, starts, stops


def mask_outline_path(mask: np.ndarray) -> QPainterPath:
    """The outline of an ``(H, W)`` bool mask along pixel edges (item coordinates).

    Every edge between a mask pixel and a non-mask pixel (or the border) is on the outline,
    so it shows exactly which pixels are in the mask; consecutive edges on one line are drawn
    as one segment (a box is 4 segments instead of its perimeter in pixels), which keeps the
    repaint on every slider move cheap.
    """
    m = np.pad(np.asarray(mask, dtype=bool), 1)  # (H+2, W+2)
    # Horizontal edges at y = r between rows r-1 and r, spanning x in [c, c+1]: (H+1, W)
    hr, h0, h1 = _edge_runs(m[1:, 1:-1] != m[:-1, 1:-1])
    # Vertical edges at x = c between columns c-1 and c, spanning y in [r, r+1]: (W+1, H)
    vc, v0, v1 = _edge_runs((m[1:-1, 1:] != m[1:-1, :-1]).T)
    x = np.concatenate([np.stack([h0, h1], 1).ravel(), np.stack([vc, vc], 1).ravel()])
    y = np.concatenate([np.stack([hr, hr], 1).ravel(), np.stack([v0, v1], 1).ravel()])
    if x.size == 0:
        return QPainterPath()
    return pg.arrayToQPath(x.astype(np.float64), y.astype(np.float64), connect="pairs")


def segment_pixels(a: tuple[int, int], b: tuple[int, int]) -> np.ndarray:
    """Pixels from ``a`` (excluded) to ``b`` (included), one per step along the longer axis.

    Returns:
        ``(n, 2)`` int array of ``(x, y)``; just ``b`` when ``a == b``.
    """
    d = np.subtract(b, a)
    n = int(np.abs(d).max())
    if n == 0:
        return np.array([b], dtype=np.int64)
    t = np.arange(1, n + 1)[:, None] / n  # (n, 1)
    return np.rint(np.asarray(a) + d[None, :] * t).astype(np.int64)


class ImageView(pg.GraphicsLayoutWidget):
    """Draws an ``(H, W, 3)`` uint8 image; reports the pixel under the mouse, clicks and strokes.

    Signals:
        hovered(x, y): image pixel under the cursor (column, row); ``(-1, -1)`` when outside.
        clicked(x, y): left click on an image pixel (column, row), ``query`` tool.
        brushed(points, erase): ``brush`` tool; ``points`` is an ``(n, 2)`` int array of
            ``(x, y)`` pixels (may lie outside the image: the receiver clips).
        strokeFinished(): the mouse button of a brush stroke was released.
        boxDrawn(x0, y0, x1, y1): ``box`` tool; inclusive pixel corners, clipped to the image.
    """

    hovered = Signal(int, int)
    clicked = Signal(int, int)
    brushed = Signal(object, bool)
    strokeFinished = Signal()
    boxDrawn = Signal(int, int, int, int)
    shapeChanged = Signal()  # the image's size changed (or it was removed): its frame re-fits

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setBackground(QColor(32, 33, 36))
        self.ci.layout.setContentsMargins(0, 0, 0, 0)
        self.view: pg.ViewBox = self.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.view.setDefaultPadding(0.0)  # the view is sized to the image: no dark frame
        self.image_item = RgbImageItem()
        self.view.addItem(self.image_item)
        # The mask outline: a dark halo under a bright line, readable on any colormap.
        self.contour_halo = QGraphicsPathItem(self.image_item)
        self.contour = QGraphicsPathItem(self.image_item)
        for item, colour, width, z in (
            (self.contour_halo, QColor(0, 0, 0, 200), 4, 9),
            (self.contour, QColor(80, 255, 120), 2, 10),
        ):
            pen = QPen(colour)
            pen.setWidthF(width)
            pen.setCosmetic(True)
            item.setPen(pen)
            item.setZValue(z)
        self.query_box = QGraphicsRectItem()
        pen = QPen(QColor(255, 255, 255))
        pen.setWidth(2)
        pen.setCosmetic(True)
        self.query_box.setPen(pen)
        self.query_box.setZValue(20)
        self.query_box.setVisible(False)
        self.view.addItem(self.query_box)
        # Tool feedback: the brush footprint under the cursor, the box being dragged.
        self.brush_cursor = QGraphicsEllipseItem(self.image_item)
        cpen = QPen(QColor(255, 255, 255, 220))
        cpen.setWidthF(1.5)
        cpen.setCosmetic(True)
        cpen.setStyle(Qt.PenStyle.DashLine)
        self.brush_cursor.setPen(cpen)
        self.brush_cursor.setZValue(25)
        self.brush_cursor.setVisible(False)
        self.box_preview = QGraphicsRectItem(self.image_item)
        bpen = QPen(QColor(80, 255, 120))
        bpen.setWidthF(2)
        bpen.setCosmetic(True)
        bpen.setStyle(Qt.PenStyle.DashLine)
        self.box_preview.setPen(bpen)
        self.box_preview.setBrush(QBrush(QColor(80, 255, 120, 40)))
        self.box_preview.setZValue(25)
        self.box_preview.setVisible(False)
        self.message = pg.TextItem("", color=(200, 200, 200), anchor=(0.5, 0.5))
        self.message.setZValue(30)
        self.view.addItem(self.message)
        self._shape: tuple[int, int] | None = None
        self._rgb: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self.tool = "query"
        self.brush_radius = 4
        self._drag: str | None = None  # "brush" / "box" while a button is held
        self._erase = False
        self._last_pixel: tuple[int, int] | None = None
        self._box_start: tuple[int, int] | None = None
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.scene().sigMouseClicked.connect(self._on_mouse_clicked)
        self._update_tooltip()
        self.set_message("No image")

    # -- content ---------------------------------------------------------------------------
    def set_rgb(self, rgb: np.ndarray | None) -> None:
        """Show ``(H, W, 3)`` uint8, or nothing. Fits the view when the size changed."""
        if rgb is None:
            self._rgb = None
            self.image_item.set_rgb(None)
            self.set_mask(None)
            self.query_box.setVisible(False)
            if self._shape is not None:
                self._shape = None
                self.shapeChanged.emit()
            return
        self._rgb = rgb
        self.image_item.set_rgb(rgb)
        shape = rgb.shape[:2]
        if shape != self._shape:
            self._shape = shape
            self.shapeChanged.emit()
            self.fit()
        if self.message.textItem.toPlainText():
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
        """Outline an ``(H, W)`` bool mask along its pixel edges, or remove the outline."""
        if mask is None or not mask.any():
            self._mask = None
            path = QPainterPath()
        else:
            self._mask = mask
            path = mask_outline_path(mask)
        self.contour.setPath(path)
        self.contour_halo.setPath(path)

    def outline_path(self) -> QPainterPath:
        """The outline drawn now (empty when there is no mask)."""
        return self.contour.path()

    def set_query_box(self, rect: tuple[int, int, int, int] | None) -> None:
        """Frame ``(x, y, w, h)`` in image pixels (the query patch), or hide the frame."""
        if rect is None:
            self.query_box.setVisible(False)
            return
        self.query_box.setRect(QRectF(*rect))
        self.query_box.setVisible(self.tool == "query")

    def aspect(self) -> float | None:
        """The image's width / height, or None without an image."""
        if self._shape is None:
            return None
        h, w = self._shape
        return w / h

    def fit(self) -> None:
        if self._shape is not None:
            h, w = self._shape
            self.view.setRange(QRectF(0, 0, w, h), padding=0.0)

    # -- tools -----------------------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        """``query`` (click picks the query patch), ``brush`` or ``box``."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}; expected one of {', '.join(TOOLS)}")
        self.tool = tool
        self._drag = None
        self.box_preview.setVisible(False)
        self.brush_cursor.setVisible(False)
        if tool != "query":
            self.query_box.setVisible(False)
        self.viewport().setCursor(
            Qt.CursorShape.CrossCursor if tool != "query" else Qt.CursorShape.ArrowCursor
        )
        self._update_tooltip()

    def set_brush_radius(self, radius: int) -> None:
        self.brush_radius = max(0, int(radius))

    def pixel_to_viewport(self, x: float, y: float) -> QPointF:
        """Viewport position of image point ``(x, y)`` (``x + 0.5`` is a pixel's centre)."""
        scene = self.image_item.mapToScene(QPointF(x, y))
        return self.viewportTransform().map(scene)

    def _image_point(self, viewport_pos: QPointF) -> QPointF:
        inverse, _ok = self.viewportTransform().inverted()
        return self.image_item.mapFromScene(inverse.map(viewport_pos))

    @staticmethod
    def _floor(p: QPointF) -> tuple[int, int]:
        return int(np.floor(p.x())), int(np.floor(p.y()))

    def _clip(self, pixel: tuple[int, int]) -> tuple[int, int]:
        h, w = self._shape
        return min(max(pixel[0], 0), w - 1), min(max(pixel[1], 0), h - 1)

    def _show_brush_cursor(self, p: QPointF) -> None:
        r = self.brush_radius + 0.5
        cx, cy = np.floor(p.x()) + 0.5, np.floor(p.y()) + 0.5
        self.brush_cursor.setRect(QRectF(cx - r, cy - r, 2 * r, 2 * r))
        self.brush_cursor.setVisible(True)

    def mousePressEvent(self, ev) -> None:  # noqa: N802 - Qt override
        button = ev.button()
        if (
            self.tool != "query"
            and self._shape is not None
            and button in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton)
        ):
            p = self._image_point(ev.position())
            pixel = self._floor(p)
            if self.tool == "brush":
                self._drag, self._erase = "brush", button == Qt.MouseButton.RightButton
                self._last_pixel = pixel
                self.brushed.emit(np.array([pixel], dtype=np.int64), self._erase)
            elif button == Qt.MouseButton.LeftButton:
                self._drag = "box"
                self._box_start = self._clip(pixel)
                self._update_box_preview(self._box_start)
            ev.accept()
            return
        super().mousePressEvent(ev)

    def mouseMoveEvent(self, ev) -> None:  # noqa: N802 - Qt override
        if self.tool == "brush" and self._shape is not None:
            self._show_brush_cursor(self._image_point(ev.position()))
        if self._drag is not None:
            pixel = self._floor(self._image_point(ev.position()))
            if self._drag == "brush":
                if pixel != self._last_pixel:
                    self.brushed.emit(segment_pixels(self._last_pixel, pixel), self._erase)
                    self._last_pixel = pixel
            else:
                self._update_box_preview(self._clip(pixel))
            ev.accept()
            return
        super().mouseMoveEvent(ev)

    def mouseReleaseEvent(self, ev) -> None:  # noqa: N802 - Qt override
        if self._drag is not None:
            kind, self._drag = self._drag, None
            if kind == "brush":
                self.strokeFinished.emit()
            elif self._box_start is not None:
                end = self._clip(self._floor(self._image_point(ev.position())))
                (x0, y0), (x1, y1) = self._box_start, end
                self.box_preview.setVisible(False)
                self.boxDrawn.emit(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            ev.accept()
            return
        super().mouseReleaseEvent(ev)

    def leaveEvent(self, ev) -> None:  # noqa: N802 - Qt override
        self.brush_cursor.setVisible(False)
        self.hovered.emit(-1, -1)  # the cursor left: no pixel is under it any more
        super().leaveEvent(ev)

    def _update_box_preview(self, end: tuple[int, int]) -> None:
        (x0, y0), (x1, y1) = self._box_start, end
        self.box_preview.setRect(
            QRectF(min(x0, x1), min(y0, y1), abs(x1 - x0) + 1, abs(y1 - y0) + 1)
        )
        self.box_preview.setVisible(True)

    def _update_tooltip(self) -> None:
        tips = {
            "query": "Wheel: zoom · drag: pan · click: show that patch's attention "
            "· double-click: fit",
            "brush": "Brush: left drag paints the mask, right drag erases · wheel: zoom "
            "· middle drag: pan",
            "box": "Box: drag a rectangle to use as the mask · wheel: zoom · middle drag: pan",
        }
        self.setToolTip(tips[self.tool])

    # -- mouse (query tool) ----------------------------------------------------------------
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
        if self.tool != "query":
            return
        hit = self._pixel_at(event.scenePos())
        if hit is not None:
            self.clicked.emit(*hit)
