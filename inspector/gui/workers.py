"""Run core functions off the GUI thread.

A :class:`BackgroundRunner` owns one ``QThread`` with one :class:`_Worker` ``QObject`` living in
it. Jobs (plain Python callables) are queued to that thread and run one after the other, so the
model is only ever used from one thread. Each job gets a request id; its result (or a one-line
error message for the user) comes back on the GUI thread through :attr:`BackgroundRunner.finished`
/ :attr:`BackgroundRunner.failed` with that id, so that the window can drop stale results.

Jobs are grouped in *channels* ("model", "image", ...): a job that has not started yet when a
newer job of the same channel is submitted is skipped, because its result would be stale anyway
(e.g. the user scrolled through ten images while the first one was still being captured).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from . import gc_guard

log = logging.getLogger(__name__)

__all__ = ["BackgroundRunner", "user_message"]

_ALL_THREADS: weakref.WeakSet[QThread] = weakref.WeakSet()


def _stop_thread(thread: QThread, timeout_ms: int = 10_000) -> None:
    try:
        if thread.isRunning():
            thread.quit()
            thread.wait(timeout_ms)
    except RuntimeError:  # the C++ object is already gone
        pass


@atexit.register
def _stop_all_threads() -> None:
    for thread in list(_ALL_THREADS):
        _stop_thread(thread)


def user_message(exc: BaseException) -> str:
    """A one-line message for the status bar: the exception's text, or its type when empty."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    if not text:
        return name
    # Our own error classes already carry a readable message; name the built-in ones.
    if name in (
        "FileNotFoundError",
        "PermissionError",
        "IsADirectoryError",
        "MemoryError",
        "RuntimeError",
        "KeyError",
        "IndexError",
        "TypeError",
    ):
        return f"{name}: {text}"
    return text


class _Worker(QObject):
    """Lives in the runner's thread; runs whatever job it is handed."""

    done = Signal(int, str, object)  # request id, channel, result
    error = Signal(int, str, str)  # request id, channel, message
    skipped = Signal(int, str)

    def __init__(self, runner: BackgroundRunner) -> None:
        super().__init__()
        self._runner = runner

    @Slot(int, str, object)
    def run(self, request_id: int, channel: str, fn: Callable[[], Any]) -> None:
        if not self._runner._is_latest(channel, request_id):
            self.skipped.emit(request_id, channel)
            return
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - becomes a message for the user
            log.debug("background job %s (%s) failed", request_id, channel, exc_info=True)
            self.error.emit(request_id, channel, user_message(exc))
            return
        self.done.emit(request_id, channel, result)


class BackgroundRunner(QObject):
    """One worker thread running submitted callables in order.

    Signals:
        finished(request_id, result): a job returned (delivered on the GUI thread).
        failed(request_id, message): a job raised; ``message`` is one line for the user.
        idle(): no job is queued or running any more.
    """

    finished = Signal(int, object)
    failed = Signal(int, str)
    idle = Signal()
    _post = Signal(int, str, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._next_id = 0
        self._latest: dict[str, int] = {}
        self._pending = 0
        self._thread = QThread()
        self._thread.setObjectName("inspector-worker")
        self._worker = _Worker(self)
        self._worker.moveToThread(self._thread)
        self._post.connect(self._worker.run)  # queued: the worker lives in the other thread
        self._worker.done.connect(self._on_done)
        self._worker.error.connect(self._on_error)
        self._worker.skipped.connect(self._on_skipped)
        # A running QThread must never be destroyed (Qt aborts the process): stop it when the
        # runner goes away, when the application quits, and at interpreter exit. The thread
        # starts with the first job, so a runner that never gets one owns no thread at all.
        thread = self._thread
        self.destroyed.connect(lambda *_: _stop_thread(thread))
        gc_guard.install()  # no cyclic collection on the worker thread (gc_guard)
        _ALL_THREADS.add(thread)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # -- public -----------------------------------------------------------------------------
    def submit(self, fn: Callable[[], Any], channel: str = "default") -> int:
        """Queue ``fn`` (no arguments) on the worker thread; returns its request id."""
        with self._lock:
            self._next_id += 1
            request_id = self._next_id
            self._latest[channel] = request_id
            self._pending += 1
        if not self._thread.isRunning():
            self._thread.start()
        self._post.emit(request_id, channel, fn)
        return request_id

    def latest(self, channel: str = "default") -> int:
        """The id of the newest job submitted on ``channel`` (0 if none)."""
        with self._lock:
            return self._latest.get(channel, 0)

    def is_latest(self, request_id: int, channel: str = "default") -> bool:
        return self._is_latest(channel, request_id)

    @property
    def latest_id(self) -> int:
        return self._next_id

    def busy(self) -> bool:
        """True while a job is queued or running."""
        with self._lock:
            return self._pending > 0

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Stop the thread after the running job; False if it did not stop in time."""
        with self._lock:
            self._latest = {k: -1 for k in self._latest}  # queued jobs become stale: skipped
        self._thread.quit()
        return self._thread.wait(timeout_ms)

    def wait_all(self, timeout_ms: int = 5000) -> bool:
        """Process events until every queued job has finished and reported; False on timeout.

        (For tests and shutdown paths: the GUI thread keeps delivering results meanwhile.)
        """
        deadline = time.monotonic() + timeout_ms / 1000
        while self.busy() and time.monotonic() < deadline:
            QCoreApplication.processEvents()
            if self.busy():
                time.sleep(0.001)
        return not self.busy()

    # -- internals --------------------------------------------------------------------------
    def _is_latest(self, channel: str, request_id: int) -> bool:
        with self._lock:
            return self._latest.get(channel) == request_id

    def _emit_if_idle(self) -> None:
        # Checked after the result's receivers ran: they may have queued a follow-up job.
        if not self.busy():
            self.idle.emit()

    @Slot(int, str, object)
    def _on_done(self, request_id: int, channel: str, result: object) -> None:
        # Count down first so that a receiver that checks busy() sees the truth.
        with self._lock:
            self._pending -= 1
        self.finished.emit(request_id, result)
        self._emit_if_idle()

    @Slot(int, str, str)
    def _on_error(self, request_id: int, channel: str, message: str) -> None:
        with self._lock:
            self._pending -= 1
        self.failed.emit(request_id, message)
        self._emit_if_idle()

    @Slot(int, str)
    def _on_skipped(self, request_id: int, channel: str) -> None:
        with self._lock:
            self._pending -= 1
        self._emit_if_idle()
