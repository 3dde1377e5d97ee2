"""The paper's 14-model ablation study as one resumable job (MISSION.md section 1).

``run_study`` trains every requested preset for every seed with the paper's hyper-parameters
(:class:`~inspector.core.config.TrainConfig` defaults), each in ``DIR/runs/<preset>/seed-<s>/``
through :func:`inspector.core.train.train`, evaluates each run's **final** model (``last.pt``:
the paper reports its models after the last epoch; ``best.pt`` is selected on the validation
split, which for Tiny ImageNet is the official val set = our test set, so using it would leak)
on the test split, and writes the report (:mod:`inspector.core.ablation_report`).

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
import hashlib
import json
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .classification import classification_metrics
from .config import PRESETS, TrainConfig, preset
from .data import load_dataset
from .data.types import DatasetSplits, ImageDataset
from .evaluation import evaluate_saliency
from .explain import from_checkpoint
from .export import save_json
from .saliency import FUSIONS, METHODS, MapSettings
from .train import (
    HISTORY,
    LAST,
    EpochEvent,
    StepEvent,
    TrainingError,
    predict_probs,
    resolve_device,
    train,
)

STUDY_FILE, EVAL_FILE, DIVERGED_FILE = "study.json", "eval.json", "diverged.json"


class AblationError(ValueError):
    """A study cannot start or continue (bad spec, a folder holding a different study...)."""


@dataclass(frozen=True)
class StudySpec:
    """Everything that defines a study.

    Attributes:
        data: ``"synthetic"`` or a Tiny ImageNet folder (test = its official val images).
        classes: number of classes (the first N).
        presets: models to train, names from :data:`~inspector.core.config.PRESETS`.
        seeds: training seeds (initialisation and batch order; the data stay fixed).
        epochs: epochs per model (the paper: 50).
        jobs: models trained at once in separate processes.
        paper_faithful: softmax inside every model then cross-entropy (the authors' double
            softmax).
        method, fusion, discard_ratio, threshold, smoothing: the saliency map scored by SMM
            (default rollout with min fusion, which the paper found most focused).
        device: ``auto``, ``cpu`` or ``cuda``.
        data_seed: seed of the synthetic data / Tiny ImageNet subsets.
        train_per_class, val_per_class, test_per_class: split sizes (None = the loader's
            default: 500 / 50 / 50 for synthetic; val/test sizes are for synthetic only).
        figure_images: test images in the saliency figure (one per class, in class order).
        threads: torch threads per training process; ``None`` = ``cores // jobs``. Tiny models
            gain little from threads and lose much when the cores are busy (measured on a
            loaded 2-core machine: one epoch of 2,000 images took 3.9 s on 1 thread, 10.6 s
            on 2), so 1 is a good choice there. With ``jobs == 1`` the study runs in the
            calling process and restores the previous thread count when it returns.
    """

    data: str = "synthetic"
    classes: int = 10
    presets: tuple[str, ...] = PRESETS
    seeds: tuple[int, ...] = (0,)
    epochs: int = 50
    jobs: int = 1
    paper_faithful: bool = False
    method: str = "rollout"
    fusion: str = "min"
    discard_ratio: float = 0.0
    threshold: float = 0.3
    smoothing: str = "none"
    device: str = "auto"
    data_seed: int = 0
    train_per_class: int | None = None
    val_per_class: int | None = None
    test_per_class: int | None = None
    figure_images: int = 6
    threads: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "presets", tuple(self.presets))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        problems = []
        unknown = [p for p in self.presets if p not in PRESETS]
        if unknown:
            problems.append(
                f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(PRESETS)}"
            )
        if not self.presets or len(set(self.presets)) != len(self.presets):
            problems.append("presets must be a non-empty list without repeats")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            problems.append(f"seeds must be distinct non-negative integers, got {self.seeds}")
        for name in ("epochs", "jobs", "classes", "figure_images", "threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.classes < 2:
            problems.append(f"classes must be >= 2, got {self.classes}")
        if self.method not in METHODS:
            problems.append(f"unknown method {self.method!r}; choose from {', '.join(METHODS)}")
        if self.fusion not in FUSIONS:
            problems.append(f"unknown fusion {self.fusion!r}; choose from {', '.join(FUSIONS)}")
        if not 0.0 <= self.discard_ratio < 1.0:
            problems.append(f"discard ratio must be in [0, 1), got {self.discard_ratio}")
        if not 0.0 <= self.threshold <= 1.0:
            problems.append(f"threshold must be in [0, 1], got {self.threshold}")
        if not self.is_synthetic and (self.val_per_class, self.test_per_class) != (None, None):
            problems.append(
                "val_per_class / test_per_class apply to the synthetic dataset only "
                "(Tiny ImageNet tests on its official 50 val images per class)"
            )
        if self.smoothing not in ("none", "paper"):
            problems.append(f"smoothing must be 'none' or 'paper', got {self.smoothing!r}")
        if problems:
            raise AblationError("; ".join(problems))

    @property
    def is_synthetic(self) -> bool:
        return self.data.strip().lower() == "synthetic"

    def threads_per_process(self) -> int:
        return self.threads or max(1, (os.cpu_count() or 1) // self.jobs)

    def train_config(self, seed: int) -> TrainConfig:
        """The paper's hyper-parameters (TrainConfig defaults) for one run."""
        return TrainConfig(epochs=self.epochs, seed=seed, device=self.device)

    def map_settings(self) -> MapSettings:
        return MapSettings(method=self.method, fusion=self.fusion, discard_ratio=self.discard_ratio)

    def eval_settings(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "fusion": self.fusion,
            "discard_ratio": self.discard_ratio,
            "threshold": self.threshold,
            "smoothing": self.smoothing,
        }

    def training_identity(self) -> dict[str, Any]:
        """What the trained models depend on; a study folder holds one identity only."""
        data = "synthetic" if self.is_synthetic else str(Path(self.data).expanduser().resolve())
        cfg = self.train_config(0).to_dict()
        for key in ("seed", "device"):
            cfg.pop(key)
        return {
            "data": data,
            "classes": self.classes,
            "data_seed": self.data_seed,
            "train_per_class": self.train_per_class,
            "val_per_class": self.val_per_class,
            "test_per_class": self.test_per_class,
            "paper_faithful": self.paper_faithful,
            "train_config": cfg,
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["presets"], d["seeds"] = list(self.presets), list(self.seeds)
        return d


@dataclass
class StudyEvent:
    """Progress over the whole study.

    ``kind``: ``start`` (data loaded), ``step`` / ``epoch`` (training), ``evaluate``,
    ``model_done``, ``report``, ``done``. ``index`` is the 1-based number of the run among
    ``total`` runs (in the order seed-major, preset-minor); ``fraction`` is the study's
    completed share in [0, 1], counting each run's evaluation as one epoch.
    """

    kind: Literal["start", "step", "epoch", "evaluate", "model_done", "report", "done"]
    preset: str | None
    seed: int | None
    index: int
    total: int
    epoch: int
    epochs: int
    fraction: float
    message: str
    metrics: dict[str, Any] | None = None


@dataclass
class StudyResult:
    status: Literal["finished", "stopped"]
    message: str
    out_dir: Path
    runs: list[dict[str, Any]] = field(default_factory=list)  # one evaluation per (preset, seed)
    rows: list[dict[str, Any]] = field(default_factory=list)  # aggregated per preset
    report_files: list[Path] = field(default_factory=list)
    wall_seconds: float = 0.0


StudyCallback = Callable[[StudyEvent], None]
_Report = Callable[..., None]  # report(kind, preset, seed, *payload)


def run_dir(out_dir: str | os.PathLike, preset_name: str, seed: int) -> Path:
    return Path(out_dir) / "runs" / preset_name / f"seed-{seed}"


def load_study_data(spec: StudySpec) -> DatasetSplits:
    """The study's dataset (deterministic in the spec, so workers can rebuild it)."""
    kwargs: dict[str, Any] = {}
    if spec.train_per_class is not None:
        kwargs["train_per_class"] = spec.train_per_class
    for name in ("val_per_class", "test_per_class"):  # synthetic only (checked by the spec)
        if getattr(spec, name) is not None:
            kwargs[name] = getattr(spec, name)
    if spec.is_synthetic:
        return load_dataset(spec.data, classes=spec.classes, seed=spec.data_seed, **kwargs)
    # A study scores SMM against the dataset's masks: load the folder as Tiny ImageNet (its
    # boxes), so a wrong folder gets that loader's precise message rather than being read
    # as a generic image folder.
    from .data.tiny_imagenet import load_tiny_imagenet

    return load_tiny_imagenet(
        Path(spec.data).expanduser(), classes=spec.classes, seed=spec.data_seed, **kwargs
    )


def _history(folder: Path) -> list[dict[str, Any]]:
    try:
        return json.loads((folder / HISTORY).read_text())
    except (OSError, ValueError):
        return []


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def evaluate_run(folder: Path, test: ImageDataset, spec: StudySpec) -> dict[str, Any]:
    """Score ``folder/last.pt`` on the test split: the paper's columns plus the confusion.

    Classification metrics come from :func:`classification_metrics` on the model's
    probabilities; SMM (``|S ∩ M| / |S ∪ M|`` with ``S`` the map pixels above the threshold)
    is averaged over the test images where it is defined (via :func:`evaluate_saliency`).
    """
    started = time.perf_counter()
    ckpt = load_checkpoint(folder / LAST)
    loaded = from_checkpoint(ckpt, device=resolve_device(spec.device))
    probs, _ = predict_probs(loaded.model, test.images, ckpt.preprocess)  # (N, C)
    metrics = classification_metrics(test.labels.numpy(), probs.numpy(), test.num_classes)
    last = ckpt.history[-1] if ckpt.history else {}
    result: dict[str, Any] = {
        "epochs_trained": int(ckpt.provenance.get("epoch", len(ckpt.history))),
        "train_acc": last.get("train_acc"),
        "train_loss": last.get("train_loss"),
        **{
            k: metrics[k] for k in ("accuracy", "precision", "recall", "f1", "roc_auc", "confusion")
        },
        "test_images": len(test),
        "train_seconds": float(sum(r.get("seconds", 0.0) for r in ckpt.history)),
        "smm": None,
        "smm_std": None,
        "smm_defined": 0,
        "smm_per_image": None,
    }
    if test.masks is not None:
        ev = evaluate_saliency(
            loaded,
            test,
            [spec.method],
            spec.map_settings(),
            smoothing=spec.smoothing,
            threshold=spec.threshold,
        )  # type: ignore[arg-type]
        stat = ev.summary["methods"][spec.method]["smm"]
        result.update(
            smm=stat["mean"],
            smm_std=stat["std"],
            smm_defined=stat["defined"],
            smm_per_image=[r.get(f"{spec.method}/smm") for r in ev.rows],
        )
    result["eval_seconds"] = time.perf_counter() - started
    return result


def _cached_eval(folder: Path, test: ImageDataset, spec: StudySpec) -> dict[str, Any]:
    key_dict = {
        **spec.eval_settings(),
        "checkpoint_sha256": _sha256(folder / LAST),
        "test_ids": hashlib.sha256("\n".join(test.ids).encode()).hexdigest(),
    }
    key = json.dumps(key_dict, sort_keys=True)
    try:
        entries = json.loads((folder / EVAL_FILE).read_text()).get("entries", {})
    except (OSError, ValueError):
        entries = {}
    if key in entries:
        return entries[key]
    result = {**evaluate_run(folder, test, spec), "settings": key_dict}
    # Older entries of another checkpoint can never match again: keep only this one's.
    entries = {
        k: v
        for k, v in entries.items()
        if v.get("settings", {}).get("checkpoint_sha256") == key_dict["checkpoint_sha256"]
    }
    entries[key] = result
    save_json(folder / EVAL_FILE, {"entries": entries}, overwrite=True)
    return json.loads(json.dumps(entries[key]))  # what a later cache hit returns (NaN -> None)


def _run_one(
    spec: StudySpec,
    preset_name: str,
    seed: int,
    out_dir: Path,
    data: DatasetSplits,
    stop: Any,
    report: _Report,
) -> dict[str, Any]:
    """Train (or reuse / resume) one run, then evaluate it. Returns the run's record."""
    folder = run_dir(out_dir, preset_name, seed)
    if stop.is_set():
        return {"preset": preset_name, "seed": seed, "status": "stopped"}
    history = _history(folder)
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
                resume=(folder / LAST).exists(),
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
    # Ctrl-C goes to the whole process group: only the parent handles it (it sets ``stop``),
    # so a worker finishes its current step and returns instead of dying mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)  # this worker's own process: N workers share the cores
    _WORKER.update(progress=progress, stop=stop)


def _worker_run(spec: StudySpec, preset_name: str, seed: int, out_dir: str) -> dict[str, Any]:
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
        spec, preset_name, seed, Path(out_dir), _WORKER["data"], _WORKER["stop"], report
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


def _check_study_folder(out: Path, spec: StudySpec, *, write: bool) -> None:
    """Refuse a folder holding another study; with ``write``, record this study's identity."""
    identity = spec.training_identity()
    path = out / STUDY_FILE
    if path.exists():
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
    save_json(path, {"training": identity}, overwrite=True)


def run_study(
    spec: StudySpec,
    out_dir: str | os.PathLike,
    *,
    callback: StudyCallback | None = None,
    stop: threading.Event | None = None,
    data: DatasetSplits | None = None,
) -> StudyResult:
    """Train, evaluate and report the study ``spec`` in ``out_dir`` (resuming what exists).

    Args:
        spec: the study.
        out_dir: the study folder (runs, caches and the report).
        callback: receives :class:`StudyEvent` s on the calling thread.
        stop: when set, training stops before its next step (workers too); the study returns
            ``status="stopped"`` and writes no report. Run it again to continue.
        data: the dataset if already loaded (else built from the spec); must be the spec's.

    Returns:
        A :class:`StudyResult`; the report files are listed when ``finished``.

    Raises:
        AblationError: a bad spec or a study folder of another study; errors of a run.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    _check_study_folder(out, spec, write=False)  # before the (slow) data loading
    previous = torch.get_num_threads()
    # With jobs == 1 the models train in this process (torch's thread count is process-wide:
    # set for the study, restored after); otherwise the workers set their own and this
    # process only draws the report (an explicit ``threads`` still applies to it).
    if spec.jobs == 1 or spec.threads:
        torch.set_num_threads(spec.threads_per_process() if spec.jobs == 1 else spec.threads)
    try:
        return _study(spec, out, callback, stop or threading.Event(), data, started)
    finally:
        torch.set_num_threads(previous)


def _study(
    spec: StudySpec,
    out: Path,
    callback: StudyCallback | None,
    stop: Any,
    data: DatasetSplits | None,
    started: float,
) -> StudyResult:
    from .ablation_report import write_report  # the report module imports this one

    data = data if data is not None else load_study_data(spec)
    _check_study_folder(out, spec, write=True)
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
    if spec.jobs == 1:
        records = []
        for p, s in runs:
            record = _run_one(spec, p, s, out, data, stop, lambda kind, *a: progress(kind, *a))
            if record["status"] == "stopped":
                break
            progress("model_done", p, s, record)
            records.append(record)
    else:
        records = _run_parallel(spec, runs, out, stop, progress)
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
        futures = {pool.submit(_worker_run, spec, p, s, str(out)): (p, s) for p, s in runs}
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


def summarise(values: list[float | None]) -> dict[str, Any]:
    """Mean and sample standard deviation (``ddof=1``; None for a single value) of the
    defined values across seeds."""
    defined = np.asarray([float(v) for v in values if v is not None], dtype=np.float64)
    if defined.size == 0:
        return {"mean": None, "std": None, "n": 0}
    std = float(defined.std(ddof=1)) if defined.size > 1 else None
    return {"mean": float(defined.mean()), "std": std, "n": int(defined.size)}
