"""SIGTERM handled like Ctrl-C: the run stops at a safe point, says how to resume, exits 143."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def stop_on_sigterm(stop: threading.Event) -> Iterator[list[int]]:
    """While inside, SIGTERM sets ``stop`` instead of killing the process.

    The training loop polls ``stop`` before every step, so an epoch's atomic writes always
    finish. Yields a list that receives the signal number when one arrived.
    """
    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedding application): leave it alone
        yield received
        return
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)
