"""A colour bar with real values: the colormap as a strip, labelled with the map values its ends
(and middle) stand for (:class:`inspector.core.colorscale.Scale`). Painted by hand: one gradient
image and three labels, so a slider move repaints it in well under a millisecond."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from inspector.core.colorscale import Scale
from inspector.core.postprocess import colorize

__all__ = ["ColorBar", "format_value"]


def format_value(v: float) -> str:
    """Three significant digits, without a scientific exponent for everyday values."""
    if v == 0:
        return "0"
    return f"{v:.3g}"


class ColorBar(QWidget):
    """Vertical (beside an image) or horizontal (under the grid) colour bar."""

    def __init__(self, orientation: Qt.Orientation = Qt.Orientation.Vertical, parent=None) -> None:
        super().__init__(parent)
        self.orientation = orientation
        self.scale: Scale | None = None
        self.colormap = "viridis"
        self.note = ""  # e.g. "each cell: own min–max" when no single range applies
        self._strip: QImage | None = None
        self._strip_buffer: np.ndarray | None = None
        if orientation == Qt.Orientation.Vertical:
            self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        else:
            self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._set_strip()

    # -- state -----------------------------------------------------------------------------
    def set_scale(self, scale: Scale | None, colormap: str | None = None, note: str = "") -> None:
        if colormap is not None and colormap != self.colormap:
            self.colormap = colormap
            self._set_strip()
        self.scale, self.note = scale, note
        self.setToolTip(self.text())
        self.update()

    def labels(self) -> tuple[str, str, str]:
        """``(lo, mid, hi)`` as shown; empty strings with no scale."""
        if self.scale is None:
            return "", "", ""
        s = self.scale
        return format_value(s.lo), format_value((s.lo + s.hi) / 2), format_value(s.hi)

    def text(self) -> str:
        lo, _, hi = self.labels()
        if self.scale is None:
            return self.note
        units = f" {self.scale.units}" if self.scale.units else ""
        return f"colour scale {lo} → {hi}{units}" + (f" ({self.note})" if self.note else "")

    # -- painting --------------------------------------------------------------------------
    def _set_strip(self) -> None:
        ramp = np.linspace(0.0, 1.0, 256, dtype=np.float32)
        vertical = self.orientation == Qt.Orientation.Vertical
        # (256, 1) with high values at the top, or (1, 256) left to right
        ramp = ramp[::-1, None] if vertical else ramp[None, :]
        rgba = np.ascontiguousarray(colorize(ramp, self.colormap))
        self._strip_buffer = rgba
        h, w = rgba.shape[:2]
        self._strip = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        fm = self.fontMetrics()
        if self.orientation == Qt.Orientation.Vertical:
            return QSize(14 + 4 + fm.horizontalAdvance("-0.00e-0"), 200)
        return QSize(240, 12 + 4 + fm.height() * 2)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        hint = self.sizeHint()
        if self.orientation == Qt.Orientation.Vertical:
            return QSize(hint.width(), 60)
        return QSize(120, hint.height())

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setPen(self.palette().color(self.foregroundRole()))
        fm = self.fontMetrics()
        lo, mid, hi = self.labels()
        if self.orientation == Qt.Orientation.Vertical:
            pad = fm.height() // 2
            bar = QRect(0, pad, 14, max(1, self.height() - 2 * pad))
            p.drawImage(bar, self._strip)
            x = bar.right() + 4
            if self.scale is not None:
                p.drawText(x, bar.top() + fm.ascent() // 2, hi)
                p.drawText(x, bar.center().y() + fm.ascent() // 2, mid)
                p.drawText(x, bar.bottom() + fm.ascent() // 2, lo)
        else:
            bar = QRect(0, 0, self.width(), 10)
            p.drawImage(bar, self._strip)
            y = bar.bottom() + 2 + fm.ascent()
            if self.scale is not None:
                p.drawText(0, y, lo)
                p.drawText(self.width() - fm.horizontalAdvance(hi), y, hi)
                p.drawText((self.width() - fm.horizontalAdvance(mid)) // 2, y, mid)
            if self.note:
                p.drawText(0, y + fm.height(), self.note)
        p.end()
