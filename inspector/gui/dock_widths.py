"""Each tabbed dock keeps its own width: a dock area takes the width of the tab shown, so
without this the left area kept the widest tab's width (the training curves' 60% of the
window) after switching back to the narrow head/layer grid, leaving the image a third of the
window (issue 11, item 7). Tabs stacked under another dock (predictions / masks under the
method panel) keep their own height the same way: the masks panel gets room when raised, the
predictions their few rows.

:class:`DockWidths` remembers the width each dock had when it was last hidden and restores it
when its tab is shown again; a dock never seen before gets its default width."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QMainWindow

__all__ = ["DockWidths"]


class DockWidths(QObject):
    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.widths: dict[str, int] = {}  # dock objectName -> width when last shown
        self._defaults: dict[str, Callable[[], int]] = {}
        self._orientation: dict[str, Qt.Orientation] = {}
        self._partner: dict[str, QDockWidget | None] = {}
        self._shown: set[str] = set()  # docks whose width is the area's now

    def track(
        self,
        dock: QDockWidget,
        default: Callable[[], int],
        orientation: Qt.Orientation = Qt.Orientation.Horizontal,
        partner: QDockWidget | None = None,
    ) -> None:
        """Follow ``dock``: ``default()`` is its width (its height for a ``Vertical``
        orientation: a tab stacked under ``partner``) the first time it is shown. A partner
        gives up or takes the difference (``resizeDocks`` of one dock alone splits it with
        its neighbour)."""
        name = dock.objectName()
        self._defaults[name] = default
        self._orientation[name] = orientation
        self._partner[name] = partner
        dock.visibilityChanged.connect(lambda visible, d=dock: self._changed(d, visible))

    def _extent(self, dock: QDockWidget) -> int:
        vertical = self._orientation[dock.objectName()] == Qt.Orientation.Vertical
        return dock.height() if vertical else dock.width()

    def _changed(self, dock: QDockWidget, visible: bool) -> None:
        with contextlib.suppress(RuntimeError):  # the window is being deleted (exit)
            self._follow(dock, visible)

    def _follow(self, dock: QDockWidget, visible: bool) -> None:
        name = dock.objectName()
        if dock.isFloating():
            return
        if not visible:
            if name in self._shown and self._extent(dock) > 0 and self.window.isVisible():
                self.widths[name] = self._extent(dock)
            self._shown.discard(name)
            return
        self._shown.add(name)
        # The tab switch lays out after this signal: resize once the event loop is free.
        QTimer.singleShot(0, lambda: self._restore(dock))

    def _restore(self, dock: QDockWidget) -> None:
        if not dock.isVisible() or dock.isFloating():
            return
        name = dock.objectName()
        width = self.widths.get(name)
        if width is None:
            width = self._defaults[name]()
        orientation, partner = self._orientation[name], self._partner[name]
        if partner is not None and partner.isVisible() and not partner.isFloating():
            vertical = orientation == Qt.Orientation.Vertical
            total = (
                (partner.height() + dock.height()) if vertical else (partner.width() + dock.width())
            )
            width = min(int(width), total - 60)  # the partner keeps a usable strip
            self.window.resizeDocks([partner, dock], [total - width, width], orientation)
        else:
            self.window.resizeDocks([dock], [int(width)], orientation)
