"""What a study is: its models, seeds, data and settings (StudySpec), its events and result."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..config import PRESETS, TrainConfig
from ..data import load_dataset
from ..data.types import DatasetSplits
from ..saliency import FUSIONS, METHODS, MapSettings

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
        for name in (
            "epochs",
            "jobs",
            "classes",
            "figure_images",
            "threads",
            "train_per_class",
            "val_per_class",
            "test_per_class",
        ):
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
    from ..data.tiny_imagenet import load_tiny_imagenet

    return load_tiny_imagenet(
        Path(spec.data).expanduser(), classes=spec.classes, seed=spec.data_seed, **kwargs
    )


def summarise(values: list[float | None]) -> dict[str, Any]:
    """Mean and sample standard deviation (``ddof=1``; None for a single value) of the
    defined values across seeds."""
    defined = np.asarray([float(v) for v in values if v is not None], dtype=np.float64)
    if defined.size == 0:
        return {"mean": None, "std": None, "n": 0}
    std = float(defined.std(ddof=1)) if defined.size > 1 else None
    return {"mean": float(defined.mean()), "std": std, "n": int(defined.size)}
