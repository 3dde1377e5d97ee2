"""The paper's 14-model ablation study as one resumable job (docs/ARCHITECTURE.md section 5).

``run_study`` trains every requested preset for every seed with the paper's hyper-parameters
(:class:`~inspector.core.config.TrainConfig` defaults), each in ``DIR/runs/<preset>/seed-<s>/``
through :func:`inspector.core.train.train`, evaluates each run's **final** model (``last.pt``:
the paper reports its models after the last epoch; ``best.pt`` is selected on the validation
split, which for Tiny ImageNet is the official val set = our test set, so using it would leak)
on the test split, and writes the report (:mod:`inspector.core.study.report`).

Resuming is the default behaviour: a run whose history already covers the requested epochs is
reused, an interrupted one continues from ``last.pt`` (``train(..., resume=True)`` is exact),
and evaluations are cached per run in ``eval.json`` keyed by the saliency settings and the
checkpoint's SHA-256, so changing the method or threshold re-evaluates without retraining.

With ``jobs > 1`` runs train in separate processes (``ProcessPoolExecutor``, "spawn"); each
worker rebuilds the dataset from the spec (deterministic; regenerating 5,000 synthetic images
takes seconds, far below one model's training) and reports progress through a queue.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import threading
import time
from pathlib import Path
from typing import Any

import torch

from ..atomic import check_folder_writable, clean_stale_temps
from ..config import preset
from ..data.types import DatasetSplits
from ..export import save_json
from ..train import (
    LAST,
    EpochEvent,
    StepEvent,
    TrainingError,
    train,
)
from .evaluate import _cached_eval, _history
from .report import write_report
from .spec import (
    DIVERGED_FILE,
    STUDY_FILE,
    AblationError,
    StudyCallback,
    StudyEvent,
    StudyResult,
    StudySpec,
    _Report,
    load_study_data,
    run_dir,
)


def _run_one(
    spec: StudySpec,
    preset_name: str,
    seed: int,
    out_dir: Path,
    data: DatasetSplits,
    stop: Any,
    report: _Report,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train (or reuse / resume) one run, then evaluate it. Returns the run's record.

    With ``overwrite`` the run is trained again from scratch, whatever its folder holds.
    """
    folder = run_dir(out_dir, preset_name, seed)
    if stop.is_set():
        return {"preset": preset_name, "seed": seed, "status": "stopped"}
    clean_stale_temps(folder)  # a killed write's (eval.json's too, when train() is skipped)
    if overwrite:
        (folder / DIVERGED_FILE).unlink(missing_ok=True)
    history = [] if overwrite else _history(folder)
    diverged = (folder / DIVERGED_FILE).exists()
    reused = diverged or (len(history) >= spec.epochs and (folder / LAST).exists())
    status, note = "finished", ""
    if diverged:
        status, note = "diverged", json.loads((folder / DIVERGED_FILE).read_text())["message"]
    if not reused:
        model_cfg = preset(
            preset_name,
            num_classes=data.train.num_classes,
            image_size=int(data.train.images.shape[-1]),
            output_softmax=spec.paper_faithful,
        )

        def on_event(event: StepEvent | EpochEvent) -> None:
            if isinstance(event, StepEvent):
                report("step", preset_name, seed, event.epoch, event.step, event.steps_per_epoch)
            else:
                report("epoch", preset_name, seed, event.epoch, event.metrics)

        folder.mkdir(parents=True, exist_ok=True)
        try:
            result = train(
                model_cfg,
                spec.train_config(seed),
                data,
                folder,
                callback=on_event,
                stop=stop,
                # Always resume: train() continues from run_state.pt, repairs the derived
                # files a kill left stale, and starts fresh in an empty folder.
                resume=not overwrite,
                overwrite=overwrite,
                provenance={"preset": preset_name, "study": str(out_dir)},
            )
        except TrainingError as exc:
            raise AblationError(f"{preset_name} seed {seed}: {exc}") from exc
        if result.status == "stopped":
            return {"preset": preset_name, "seed": seed, "status": "stopped"}
        if result.status == "diverged":
            status, note = "diverged", result.message
            folder.mkdir(parents=True, exist_ok=True)
            save_json(folder / DIVERGED_FILE, {"message": result.message}, overwrite=True)
    record: dict[str, Any] = {
        "preset": preset_name,
        "seed": seed,
        "status": status,
        "note": note,
        "reused": reused,
    }
    if not (folder / LAST).exists():  # diverged in its first epoch: nothing to evaluate
        return record
    report("evaluate", preset_name, seed)
    record.update(_cached_eval(folder, data.test, spec))
    return record


# ---------------------------------------------------------------------------------- workers
_WORKER: dict[str, Any] = {}


def _worker_init(progress: Any, stop: Any, threads: int) -> None:
    # Ctrl-C (and a job scheduler's SIGTERM) goes to the whole process group: only the parent
    # handles it (it sets ``stop``),
    # so a worker finishes its current step and returns instead of dying mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # likewise for SLURM's / kill's SIGTERM
    torch.set_num_threads(threads)  # this worker's own process: N workers share the cores
    _WORKER.update(progress=progress, stop=stop)


def _worker_run(
    spec: StudySpec, preset_name: str, seed: int, out_dir: str, overwrite: bool = False
) -> dict[str, Any]:
    if _WORKER.get("spec") != spec:  # one rebuild per worker process, not per run
        _WORKER.update(spec=spec, data=load_study_data(spec))
    progress = _WORKER["progress"]
    last_step = [0.0]

    def report(kind: str, *payload: Any) -> None:
        now = time.perf_counter()
        if kind == "step" and now - last_step[0] < 0.5:
            return  # a queue message per step would cost more than a tiny model's step
        last_step[0] = now
        progress.put((kind, *payload))

    return _run_one(
        spec,
        preset_name,
        seed,
        Path(out_dir),
        _WORKER["data"],
        _WORKER["stop"],
        report,
        overwrite,
    )


# ------------------------------------------------------------------------------ the study
class _Progress:
    """Turns run-level reports into study-level :class:`StudyEvent` s."""

    def __init__(
        self,
        runs: list[tuple[str, int]],
        spec: StudySpec,
        out_dir: Path,
        callback: StudyCallback | None,
    ) -> None:
        self.runs, self.spec, self.callback = runs, spec, callback
        self.index = {r: i + 1 for i, r in enumerate(runs)}
        self.done = {r: float(min(len(_history(run_dir(out_dir, *r))), spec.epochs)) for r in runs}
        self.evaluated: set[tuple[str, int]] = set()

    def fraction(self) -> float:
        total = len(self.runs) * (self.spec.epochs + 1)
        return (sum(self.done.values()) + len(self.evaluated)) / total

    def __call__(self, kind: str, preset_name: str, seed: int, *payload: Any) -> None:
        key = (preset_name, seed)
        epoch, metrics, message = int(self.done[key]), None, ""
        if kind == "step":
            epoch, step, steps = payload
            self.done[key] = epoch - 1 + step / steps
            message = f"{preset_name} seed {seed}: epoch {epoch} step {step}/{steps}"
        elif kind == "epoch":
            epoch, metrics = payload
            self.done[key] = float(epoch)
            message = (
                f"{preset_name} seed {seed}: epoch {epoch}/{self.spec.epochs} train acc "
                f"{metrics['train_acc']:.3f} val acc {metrics['val_accuracy']:.3f}"
            )
        elif kind == "evaluate":
            message = f"{preset_name} seed {seed}: evaluating on the test split"
        elif kind == "model_done":
            self.done[key] = float(self.spec.epochs)
            self.evaluated.add(key)
            (metrics,) = payload
            message = f"{preset_name} seed {seed}: {metrics.get('status')}"
        if self.callback:
            self.callback(
                StudyEvent(
                    kind,
                    preset_name,
                    seed,
                    self.index[key],
                    len(self.runs),  # type: ignore[arg-type]
                    epoch,
                    self.spec.epochs,
                    self.fraction(),
                    message,
                    metrics,
                )
            )


def _check_study_folder(
    out: Path, spec: StudySpec, *, write: bool, overwrite: bool = False
) -> None:
    """Refuse a folder holding another study (unless ``overwrite``); with ``write``, record
    this study's identity."""
    identity = spec.training_identity()
    path = out / STUDY_FILE
    if out.exists() and not out.is_dir():
        raise AblationError(f"{out} is a file, not a folder")
    if path.exists() and not overwrite:
        try:
            saved = json.loads(path.read_text())["training"]
        except (OSError, ValueError, KeyError) as exc:
            raise AblationError(f"{path} is unreadable ({exc}); use another --out") from exc
        differing = sorted(k for k in identity if saved.get(k) != identity[k])
        if differing:
            raise AblationError(
                f"{out} holds a study trained with other settings "
                f"({', '.join(differing)} differ); use another --out"
            )
    if not write:
        return
    out.mkdir(parents=True, exist_ok=True)
    check_folder_writable(out)
    # Temporaries of killed writes (the report's, the study file's); the runs' own are
    # cleaned by train().
    for folder in (out, out / "confusion", out / "curves"):
        clean_stale_temps(folder)
    save_json(path, {"training": identity}, overwrite=True)


def run_study(
    spec: StudySpec,
    out_dir: str | os.PathLike,
    *,
    callback: StudyCallback | None = None,
    stop: threading.Event | None = None,
    data: DatasetSplits | None = None,
    ray: str | None = None,
    overwrite: bool = False,
) -> StudyResult:
    """Train, evaluate and report the study ``spec`` in ``out_dir`` (resuming what exists).

    Args:
        spec: the study.
        out_dir: the study folder (runs, caches and the report).
        callback: receives :class:`StudyEvent` s on the calling thread.
        stop: when set, training stops before its next step (workers too); the study returns
            ``status="stopped"`` and writes no report. Run it again to continue.
        data: the dataset if already loaded (else built from the spec); must be the spec's.
        ray: train each (model, seed) as a Ray task on this cluster (``ray://...``,
            ``auto``; ``local`` starts one) instead of ``spec.jobs`` processes.
        overwrite: train every run again from scratch and replace the study's identity,
            even when ``out_dir`` holds a study of other settings.

    Returns:
        A :class:`StudyResult`; the report files are listed when ``finished``.

    Raises:
        AblationError: a bad spec or a study folder of another study; errors of a run.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    _check_study_folder(out, spec, write=False, overwrite=overwrite)  # before data loading
    previous = torch.get_num_threads()
    # With jobs == 1 the models train in this process (torch's thread count is process-wide:
    # set for the study, restored after); otherwise the workers set their own and this
    # process only draws the report (an explicit ``threads`` still applies to it).
    if spec.jobs == 1 or spec.threads:
        torch.set_num_threads(spec.threads_per_process() if spec.jobs == 1 else spec.threads)
    try:
        if ray is None:
            return _study(
                spec, out, callback, stop or threading.Event(), data, started, False, overwrite
            )
        from ..cluster import ray_session

        with ray_session(ray):
            return _study(
                spec, out, callback, stop or threading.Event(), data, started, True, overwrite
            )
    finally:
        torch.set_num_threads(previous)


def _study(
    spec: StudySpec,
    out: Path,
    callback: StudyCallback | None,
    stop: Any,
    data: DatasetSplits | None,
    started: float,
    on_ray: bool = False,
    overwrite: bool = False,
) -> StudyResult:
    data = data if data is not None else load_study_data(spec)
    _check_study_folder(out, spec, write=True, overwrite=overwrite)
    runs = [(p, s) for s in spec.seeds for p in spec.presets]
    progress = _Progress(runs, spec, out, callback)
    if callback:
        todo = sum(1 for r in runs if progress.done[r] < spec.epochs)
        callback(
            StudyEvent(
                "start",
                None,
                None,
                0,
                len(runs),
                0,
                spec.epochs,
                progress.fraction(),
                f"{len(runs)} runs ({len(spec.presets)} models x {len(spec.seeds)} "
                f"seeds, {spec.epochs} epochs), {todo} to train, on "
                f"{len(data.train)} training images; {spec.jobs} job(s)",
            )
        )
    if on_ray:
        from .on_ray import run_study_on_ray

        records = run_study_on_ray(spec, runs, out, stop, progress, _run_one, overwrite)
    elif spec.jobs == 1:
        records = []
        for p, s in runs:
            record = _run_one(
                spec, p, s, out, data, stop, lambda kind, *a: progress(kind, *a), overwrite
            )
            if record["status"] == "stopped":
                break
            progress("model_done", p, s, record)
            records.append(record)
    else:
        records = _run_parallel(spec, runs, out, stop, progress, overwrite)
    if len(records) < len(runs):
        done = sum(1 for r in records if r["status"] != "stopped")
        return StudyResult(
            "stopped",
            f"stopped with {done} of {len(runs)} runs complete; run the study again to continue",
            out,
            records,
            wall_seconds=time.perf_counter() - started,
        )
    order = {r: i for i, r in enumerate(runs)}
    records.sort(key=lambda r: order[(r["preset"], r["seed"])])
    if callback:
        callback(
            StudyEvent(
                "report",
                None,
                None,
                len(runs),
                len(runs),
                spec.epochs,
                spec.epochs,
                progress.fraction(),
                f"writing the report in {out}",
            )
        )
    wall = time.perf_counter() - started
    rows, files = write_report(spec, out, records, data, wall_seconds=wall)
    wall = time.perf_counter() - started
    if callback:
        callback(
            StudyEvent(
                "done",
                None,
                None,
                len(runs),
                len(runs),
                spec.epochs,
                spec.epochs,
                1.0,
                f"study finished in {wall:.0f} s",
            )
        )
    return StudyResult(
        "finished", f"{len(runs)} runs; report in {out}", out, records, rows, files, wall
    )


def _run_parallel(
    spec: StudySpec,
    runs: list[tuple[str, int]],
    out: Path,
    stop: threading.Event,
    progress: _Progress,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    messages, worker_stop = ctx.Queue(), ctx.Event()
    workers = min(spec.jobs, len(runs))
    threads = spec.threads or max(1, (os.cpu_count() or 1) // workers)
    records: list[dict[str, Any]] = []
    error: BaseException | None = None

    def drain() -> None:
        while True:
            try:
                progress(*messages.get_nowait())
            except queue_mod.Empty:
                return

    with cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=_worker_init,
        initargs=(messages, worker_stop, threads),
    ) as pool:
        futures = {
            pool.submit(_worker_run, spec, p, s, str(out), overwrite): (p, s) for p, s in runs
        }
        pending = set(futures)
        try:
            while pending:
                done, pending = cf.wait(pending, timeout=0.2, return_when=cf.FIRST_COMPLETED)
                drain()
                if stop.is_set() and not worker_stop.is_set():
                    worker_stop.set()
                    for f in pending:
                        f.cancel()
                for f in done:
                    if f.cancelled():
                        continue
                    try:
                        record = f.result()
                    except Exception as exc:  # stop the others, then report this one
                        error = error or exc
                        worker_stop.set()
                        for g in pending:
                            g.cancel()
                        continue
                    if record["status"] != "stopped":
                        progress("model_done", record["preset"], record["seed"], record)
                        records.append(record)
        except KeyboardInterrupt:
            worker_stop.set()
            for f in pending:
                f.cancel()
            raise
        finally:
            drain()
    if error is not None:
        raise error
    return records
