"""Python's cyclic garbage collector runs only from a GUI-thread timer while Qt is in use.

An automatic collection runs wherever an allocation crosses a threshold, and with PySide6 two
such places froze the window (and the test run) for good, both seen in the full suite with
py-spy:

* on a worker thread (the compare view's job building a model): it collected Qt wrappers whose
  C++ objects were destroyed there, holding a Qt mutex while waiting for the GIL, while the
  GUI thread held the GIL and waited for that mutex;
* inside ``QObject::disconnect`` on the GUI thread (shiboken looking up a Python override with
  the connection mutex held): the collected object's destructor took the same mutex.

So :func:`install` turns automatic collection off and a 0.5 s ``QTimer`` on the GUI thread runs
the collections the thresholds call for, from the event loop, where no Qt lock is held: what
pyqtgraph's ``GarbageCollector`` does for the same reason. ``main.py`` also keeps collection off
until the first map is painted (:func:`set_wanted`, :func:`inspector.gui.app.
settle_garbage_collector`).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QCoreApplication, QObject, QTimer

__all__ = ["install", "installed", "set_wanted", "wanted"]

INTERVAL_MS = 500

_collector: _Collector | None = None
_wanted = True  # collections wanted (False during start-up, until the first map)


class _Collector(QObject):
    """The timer's owner, a child of the application (it lives as long as Qt does)."""

    def __init__(self, app: QCoreApplication) -> None:
        super().__init__(app)
        self.collections = [0, 0, 0]  # how many of each generation this timer ran
        self.timer = QTimer(self)
        self.timer.setInterval(INTERVAL_MS)
        self.timer.timeout.connect(self.check)
        self.timer.start()

    def check(self) -> None:
        """Collect the generations whose counts passed their thresholds (Python's own rule,
        without the long-lived ratio: a full collection at most every 100 young ones)."""
        if not _wanted:
            return
        counts, thresholds = gc.get_count(), gc.get_threshold()
        for generation in range(3):
            if counts[generation] <= thresholds[generation]:
                break
            gc.collect(generation)
            self.collections[generation] += 1


def install() -> None:
    """Collect only from the GUI thread's timer from now on (idempotent; needs the
    QApplication, and must be called on its thread)."""
    global _collector
    app = QCoreApplication.instance()
    if app is None or _collector is not None:
        return
    gc.disable()
    _collector = _Collector(app)
    _collector.destroyed.connect(_uninstalled)


def _uninstalled(*_: object) -> None:
    global _collector
    _collector = None
    if _wanted:
        gc.enable()  # Qt is gone: no Qt object left to collect at the wrong moment


def installed() -> _Collector | None:
    return _collector


def wanted() -> bool:
    return _wanted


def set_wanted(on: bool) -> None:
    """Whether collections should run (by the timer once installed, else automatically)."""
    global _wanted
    _wanted = on
    if _collector is None:
        if on:
            gc.enable()
        else:
            gc.disable()
