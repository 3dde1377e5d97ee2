"""The ablation-study job that the training panel runs off the GUI thread.

``StudyWorker`` is a ``QObject`` moved to a ``QThread`` like :class:`TrainingWorker`. Its ``run``
slot calls :func:`inspector.core.study.run_study` (which loads the data, trains every model -
in worker processes when ``jobs > 1`` - evaluates them and writes the report) with a
``threading.Event`` stop flag the GUI thread sets directly. The core's study events become
throttled signals carrying plain Python values only.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from .training_worker import is_user_error, user_message

_CURVE_KEYS = ("train_loss", "val_loss", "train_acc", "val_accuracy")


def study_models(out_dir: str | Path, rows: list[dict[str, Any]], seed: int) -> list[str]:
    """The final model (``last.pt``, the one the report scores) of every preset for ``seed``,
    in the report's order; presets whose run left no model are skipped."""
    from inspector.core.study import run_dir
    from inspector.core.train import LAST

    paths = [run_dir(out_dir, row["model"], seed) / LAST for row in rows]
    return [str(p) for p in paths if p.is_file()]


class StudyWorker(QObject):
    """Runs one study (``inspector.core.study.StudySpec``) into ``out_dir``.

    Signals (plain Python values):
        log(str): one line per finished epoch / model and the study's own messages.
        progress(dict): throttled: ``fraction`` (whole study, [0, 1]), ``index``/``total``
            (run number), ``preset``, ``seed``, ``epoch``/``epochs``, ``message``,
            ``elapsed`` and ``eta_seconds`` (from the fraction done so far); for an ``epoch``
            event ``curves``: that run's ``train_loss``, ``val_loss``, ``train_acc``,
            ``val_accuracy`` at ``epoch``.
        done(str, str, dict): ``status`` (finished / stopped / failed), a message, and for a
            finished study ``{"rows": [...], "report": path of report.md, "models": [paths],
            "wall_seconds": s}`` (``rows`` as :func:`inspector.core.study.aggregate`).
    """

    log = Signal(str)
    progress = Signal(dict)
    done = Signal(str, str, dict)

    def __init__(
        self, spec: Any, out_dir: Path, stop: threading.Event, *, min_interval_s: float = 0.1
    ) -> None:
        super().__init__()
        self.spec = spec
        self.out_dir = Path(out_dir)
        self.stop = stop
        self.min_interval_s = min_interval_s
        self._last_emit = 0.0
        self._started = 0.0
        self._start_fraction = 0.0
        # Set before ``done`` is emitted (a GUI thread blocked in QThread.wait() reads it).
        self.result: tuple[str, str, dict] | None = None

    def _finish(self, status: str, message: str, payload: dict | None = None) -> None:
        self.result = (status, message, payload or {})
        self.done.emit(status, message, payload or {})

    @Slot()
    def run(self) -> None:
        from inspector.core.study import run_study

        self._started = time.perf_counter()
        try:
            self.log.emit(
                f"study: {len(self.spec.presets)} model(s) x {len(self.spec.seeds)} "
                f"seed(s), {self.spec.epochs} epochs, {self.spec.jobs} job(s) -> "
                f"{self.out_dir}; loading the data ..."
            )
            result = run_study(self.spec, self.out_dir, callback=self._on_event, stop=self.stop)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message in the panel
            if not is_user_error(exc):
                traceback.print_exc(file=sys.stderr)
            self._finish("failed", user_message(exc))
            return
        if result.status != "finished":
            self._finish("stopped", result.message)
            return
        self._finish(
            "finished",
            result.message,
            {
                "rows": result.rows,
                "report": str(self.out_dir / "report.md"),
                "models": study_models(self.out_dir, result.rows, self.spec.seeds[0]),
                "wall_seconds": result.wall_seconds,
            },
        )

    # Called on the worker thread by the core -------------------------------------------
    def _on_event(self, event: Any) -> None:
        now = time.perf_counter()
        if event.kind == "start":
            # Resumed work counts as done before this session: the ETA uses only the rate
            # measured now.
            self._start_fraction = event.fraction
            self._started = now
        if event.kind != "step":
            self.log.emit(event.message)
        elif now - self._last_emit < self.min_interval_s:
            return  # steps: at most ~10 progress signals a second
        self._last_emit = now
        elapsed = now - self._started
        gained = event.fraction - self._start_fraction
        eta = elapsed / gained * (1.0 - event.fraction) if gained > 0 else float("nan")
        curves = {}
        if event.kind == "epoch" and event.metrics:
            curves = {k: float(event.metrics[k]) for k in _CURVE_KEYS if k in event.metrics}
        self.progress.emit(
            {
                "kind": event.kind,
                "fraction": float(event.fraction),
                "curves": curves,
                "index": event.index,
                "total": event.total,
                "preset": event.preset,
                "seed": event.seed,
                "epoch": event.epoch,
                "epochs": event.epochs,
                "message": event.message,
                "elapsed": elapsed,
                "eta_seconds": eta,
            }
        )
