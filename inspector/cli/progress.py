"""Terminal progress bar and plain-text tables for the CLI (no third-party dependency)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO


class ProgressBar:
    """A one-line progress bar with ETA on a terminal; plain periodic lines otherwise
    (so logs of cluster jobs stay readable)."""

    def __init__(self, total: int, *, width: int = 30, stream: TextIO | None = None) -> None:
        self.total = max(1, total)
        self.width = width
        self.stream = stream or sys.stderr
        self.started = time.perf_counter()
        self.tty = self.stream.isatty()
        self._last_draw = 0.0
        self._shown = False

    def update(self, done: int, text: str = "") -> None:
        now = time.perf_counter()
        if now - self._last_draw < 0.1 and done < self.total:
            return  # throttle: drawing costs more than a tiny model's training step
        if not self.tty and now - self._last_draw < 10 and done < self.total:
            return
        self._last_draw = now
        frac = min(1.0, done / self.total)
        elapsed = now - self.started
        eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        filled = int(round(frac * self.width))
        line = (
            f"[{'#' * filled}{'.' * (self.width - filled)}] {frac * 100:5.1f}% "
            f"ETA {_duration(eta)} {text}"
        )
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self._shown = True
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line that stays above the bar."""
        if self.tty and self._shown:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self._last_draw = 0.0
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._shown:
            self.stream.write("\n")
            self.stream.flush()
        self._shown = False


def _duration(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "--:--"
    seconds = int(round(seconds))
    minutes, sec = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes:02d}:{sec:02d}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown-compatible table with aligned columns."""
    cells = [list(map(str, header))] + [list(map(str, r)) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])
