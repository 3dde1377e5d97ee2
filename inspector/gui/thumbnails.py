"""A horizontal strip of image thumbnails for browsing a folder (arrow keys move through it).

Thumbnails are decoded a few at a time from a zero-interval timer, so a large folder fills in
progressively and never freezes the window.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QListView, QListWidget, QListWidgetItem

__all__ = ["ThumbnailStrip"]

THUMB = 72
_PER_TICK = 8


def _thumbnail(path: Path) -> QPixmap | None:
    try:
        with Image.open(path) as im:
            im.thumbnail((THUMB, THUMB))
            rgb = np.ascontiguousarray(np.asarray(im.convert("RGB")))
    except Exception:  # noqa: BLE001 - a broken file just gets no picture
        return None
    h, w = rgb.shape[:2]
    qimg = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(qimg)


class ThumbnailStrip(QListWidget):
    """Signals: activated(Path): the user moved to (or clicked) another image."""

    activated = Signal(object)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setFixedHeight(THUMB + 44)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setToolTip("Images of the folder: ← → to move, click to open")
        self._paths: list[Path] = []
        self._todo: list[int] = []
        self._timer = QTimer(self)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._load_some)
        self.currentRowChanged.connect(self._on_row)

    def set_paths(self, paths: list[Path]) -> None:
        self.blockSignals(True)
        self.clear()
        self._paths = list(paths)
        for p in self._paths:
            item = QListWidgetItem(p.name)
            item.setToolTip(str(p))
            item.setSizeHint(QSize(THUMB + 16, THUMB + 34))
            self.addItem(item)
        self.blockSignals(False)
        self._todo = list(range(len(self._paths)))
        self._timer.start()

    def paths(self) -> list[Path]:
        return list(self._paths)

    def select(self, row: int) -> None:
        if not self._paths:
            return
        row = max(0, min(row, len(self._paths) - 1))
        if row == self.currentRow():
            self.activated.emit(self._paths[row])
        else:
            self.setCurrentRow(row)  # emits activated through _on_row

    def step(self, delta: int) -> None:
        if self._paths:
            self.select((self.currentRow() if self.currentRow() >= 0 else 0) + delta)

    def _on_row(self, row: int) -> None:
        if 0 <= row < len(self._paths):
            self.scrollToItem(self.item(row))
            self.activated.emit(self._paths[row])

    def _load_some(self) -> None:
        for _ in range(_PER_TICK):
            if not self._todo:
                self._timer.stop()
                return
            i = self._todo.pop(0)
            pix = _thumbnail(self._paths[i])
            if pix is not None and i < self.count():
                self.item(i).setIcon(QIcon(pix))
