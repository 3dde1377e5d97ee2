"""``--events json``: one JSON object per line on stdout, for a program driving the CLI.

The GUI runs ``train`` and ``ablate`` as child processes and reads these lines (issue 11:
training in a separate process, so the window's event loop never shares the GIL with the
training loop). Every line is one object with an ``event`` key; the core's own event
dataclasses (``StepEvent``, ``EpochEvent``, ``StudyEvent``) become their fields. Errors stay
the CLI's one line on stderr and its exit status.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from typing import Any, TextIO


def plain(value: Any) -> Any:
    """``value`` as JSON-ready Python: tensors and numpy scalars become numbers; non-finite
    floats stay (Python's json writes NaN / Infinity and reads them back)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (ValueError, RuntimeError):  # an array of several values
            return plain(value.tolist())
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class JsonEvents:
    """Writes events as JSON lines; step-like events are throttled (``min_interval_s``) so a
    tiny model's thousands of steps per second do not flood the pipe."""

    def __init__(self, stream: TextIO | None = None, *, min_interval_s: float = 0.1) -> None:
        self.stream = stream or sys.stdout
        self.min_interval_s = min_interval_s
        self.started = time.perf_counter()
        self._last_step = -math.inf

    def emit(self, event: str, payload: Any = None, **fields: Any) -> None:
        data = dataclasses.asdict(payload) if dataclasses.is_dataclass(payload) else {}
        data.update(fields)
        data["event"] = event
        data["elapsed"] = time.perf_counter() - self.started
        self.stream.write(json.dumps(plain(data)) + "\n")
        self.stream.flush()

    def step(self, payload: Any, *, force: bool = False, **fields: Any) -> None:
        """A throttled ``step`` event (``force``: the last step of an epoch, always sent)."""
        now = time.perf_counter()
        if not force and now - self._last_step < self.min_interval_s:
            return
        self._last_step = now
        self.emit("step", payload, **fields)
