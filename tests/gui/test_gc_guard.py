"""Cyclic collections run only from the GUI thread's timer once Qt is in use
(inspector/gui/gc_guard.py). An automatic collection on a worker thread, or inside a Qt call
holding a connection mutex, destroyed Qt objects there and deadlocked the process."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest

pytest.importorskip("pytestqt")

from inspector.gui import gc_guard  # noqa: E402
from inspector.gui.workers import BackgroundRunner  # noqa: E402


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def _garbage() -> weakref.ref:
    node = _Node()
    ref = weakref.ref(node)
    del node
    return ref


def test_a_worker_allocating_past_the_threshold_collects_nothing(qtbot):
    runner = BackgroundRunner()  # installs the guard
    assert gc_guard.installed() is not None and not gc.isenabled()
    ref = _garbage()
    threshold = gc.get_threshold()[0]

    def job() -> tuple[bool, str, list]:
        # Far past generation 0's threshold (the count is of live tracked objects: kept).
        keep = [[i] for i in range(50 * threshold)]
        return ref() is not None, threading.current_thread().name, keep

    with qtbot.waitSignal(runner.finished, timeout=10_000) as done:
        runner.submit(job)
    alive_on_worker, thread, _keep = done.args[1]
    assert thread != threading.main_thread().name
    assert alive_on_worker  # the worker never ran a collection
    # The GUI thread's timer does, from the event loop.
    qtbot.waitUntil(lambda: ref() is None, timeout=5 * gc_guard.INTERVAL_MS)
    assert runner.shutdown()


def test_nothing_is_collected_until_wanted(qtbot):
    BackgroundRunner()
    collector = gc_guard.installed()
    gc_guard.set_wanted(False)  # main.py's start-up, until the first map
    try:
        ref = _garbage()
        keep = [[i] for i in range(3 * gc.get_threshold()[0])]  # past the threshold
        for _ in range(3):  # three ticks of the timer
            with qtbot.waitSignal(collector.timer.timeout, timeout=5 * gc_guard.INTERVAL_MS):
                pass
        assert ref() is not None and keep
    finally:
        gc_guard.set_wanted(True)
    before = collector.collections[0]
    qtbot.waitUntil(lambda: ref() is None, timeout=5 * gc_guard.INTERVAL_MS)
    assert collector.collections[0] > before
