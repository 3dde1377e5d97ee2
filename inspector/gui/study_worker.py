"""The ablation-study job that the training panel runs, in a separate process (issue 11).

:class:`StudyProcess` runs ``vit-inspector ablate ... --events json`` as a child process like
:class:`~inspector.gui.training_worker.TrainingProcess`: the child calls
:func:`inspector.core.study.run_study` (it loads the data, trains every model - in its own
worker processes when ``jobs > 1`` - evaluates them and writes the report); its
``StudyEvent`` lines become signals carrying plain Python values only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from .cli_process import CliJob

_CURVE_KEYS = ("train_loss", "val_loss", "train_acc", "val_accuracy")


def study_models(out_dir: str | Path, rows: list[dict[str, Any]], seed: int) -> list[str]:
    """The final model (``last.pt``, the one the report scores) of every preset for ``seed``,
    in the report's order; presets whose run left no model are skipped."""
    from inspector.core.study import run_dir
    from inspector.core.train import LAST

    paths = [run_dir(out_dir, row["model"], seed) / LAST for row in rows]
    return [str(p) for p in paths if p.is_file()]


def study_args(spec: Any, out_dir: Path) -> list[str]:
    """The ``vit-inspector ablate`` arguments that run ``spec`` (a ``StudySpec``) into
    ``out_dir``; every setting explicit. The GUI's seeds are always ``0..N-1``."""
    if tuple(spec.seeds) != tuple(range(len(spec.seeds))):
        raise ValueError(f"a study's seeds are 0..N-1, got {spec.seeds}")
    args = [
        "ablate",
        f"--data={spec.data}",
        f"--classes={spec.classes}",
        f"--only={','.join(spec.presets)}",
        f"--seeds={len(spec.seeds)}",
        f"--epochs={spec.epochs}",
        f"--jobs={spec.jobs}",
        f"--method={spec.method}",
        f"--fusion={spec.fusion}",
        f"--discard={spec.discard_ratio!r}",
        f"--threshold={spec.threshold!r}",
        f"--smooth={spec.smoothing}",
        f"--device={spec.device}",
        f"--data-seed={spec.data_seed}",
    ]
    args += ["--paper-faithful"] if spec.paper_faithful else []
    args += [f"--threads={spec.threads}"] if spec.threads else []
    for flag, value in (
        ("--train-per-class", spec.train_per_class),
        ("--val-per-class", spec.val_per_class),
        ("--test-per-class", spec.test_per_class),
    ):
        if value is not None:
            args.append(f"{flag}={value}")
    return [*args, f"--out={out_dir}", "--events=json"]


class StudyProcess(CliJob):
    """Runs one study (``inspector.core.study.StudySpec``) into ``out_dir`` as
    ``vit-inspector ablate --events json`` in a child process, read on the GUI thread.

    Signals (plain Python values):
        log(str): one line per finished epoch / model and the study's own messages.
        progress(dict): ``fraction`` (whole study, [0, 1]), ``index``/``total`` (run number),
            ``preset``, ``seed``, ``epoch``/``epochs``, ``message``, ``elapsed`` and
            ``eta_seconds`` (from the fraction done so far); for an ``epoch`` event
            ``curves``: that run's ``train_loss``, ``val_loss``, ``train_acc``,
            ``val_accuracy`` at ``epoch``.
        done(str, str, dict): ``status`` (finished / stopped / failed), a message, and for a
            finished study ``{"rows": [...], "report": path of report.md, "models": [paths],
            "wall_seconds": s}`` (``rows`` as :func:`inspector.core.study.aggregate`).
    """

    progress = Signal(dict)
    done = Signal(str, str, dict)

    def __init__(self, spec: Any, out_dir: Path, parent: QObject | None = None) -> None:
        out = Path(out_dir)
        not_started = "cancelled before the study started"
        super().__init__(study_args(spec, out), "study", not_started, parent)
        self.spec = spec
        self.out_dir = out
        self._started = 0.0  # the child's clock at the study's start event
        self._start_fraction = 0.0
        # Set before ``done`` is emitted (window close waits and reads it).
        self.result: tuple[str, str, dict] | None = None

    def start(self) -> None:
        self.log.emit(
            f"study: {len(self.spec.presets)} model(s) x {len(self.spec.seeds)} "
            f"seed(s), {self.spec.epochs} epochs, {self.spec.jobs} job(s) -> "
            f"{self.out_dir}; loading the data in a study process ..."
        )
        super().start()

    @Slot(dict)
    def _on_event(self, e: dict) -> None:
        kind = e["event"]
        if kind == "result":
            self._outcome = e
            return
        now = float(e["elapsed"])
        if kind == "start":
            # Resumed work counts as done before this session: the ETA uses only the rate
            # measured now.
            self._start_fraction, self._started = float(e["fraction"]), now
        if kind != "step":
            self.log.emit(str(e["message"]))
        elapsed = now - self._started
        gained = float(e["fraction"]) - self._start_fraction
        eta = elapsed / gained * (1.0 - float(e["fraction"])) if gained > 0 else float("nan")
        metrics = e.get("metrics") or {}
        curves = {}
        if kind == "epoch":
            curves = {k: float(metrics[k]) for k in _CURVE_KEYS if k in metrics}
        keys = ("index", "total", "preset", "seed", "epoch", "epochs", "message")
        self.progress.emit(
            {
                "kind": kind,
                "fraction": float(e["fraction"]),
                "curves": curves,
                **{k: e[k] for k in keys},
                "elapsed": elapsed,
                "eta_seconds": eta,
            }
        )

    @Slot(int, bool, str)
    def _on_ended(self, code: int, crashed: bool, error: str) -> None:
        out = self._outcome
        if out is not None and out["status"] == "finished":
            rows = list(out["rows"])
            payload = {
                "rows": rows,
                "report": str(out["report"]),
                "models": study_models(self.out_dir, rows, self.spec.seeds[0]),
                "wall_seconds": float(out["wall_seconds"]),
            }
            status, message = "finished", str(out["message"])
        elif out is not None:
            status, message, payload = "stopped", str(out["message"]), {}
        else:
            (status, message), payload = self._ended_without_result(code, crashed, error), {}
        self.result = (status, message, payload)
        self.done.emit(status, message, payload)
