"""The training job that the training panel runs off the GUI thread.

``TrainingWorker`` is a ``QObject`` moved to a ``QThread`` (ARCHITECTURE.md section 3). Its
``run`` slot loads the dataset (Tiny ImageNet takes seconds, so this too happens on the worker
thread), then calls :func:`inspector.core.train.train` with a ``threading.Event`` stop flag that
the GUI thread sets directly. The core's events are turned into throttled signals carrying only
plain Python values (no tensors), so the GUI thread never waits on the training thread.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PySide6.QtCore import QObject, Signal, Slot

DatasetKind = Literal["synthetic", "tiny-imagenet", "folder"]

# Errors the core raises for bad input: shown as their own message, never as a traceback.
_USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError)


@dataclass(frozen=True)
class DatasetSpec:
    """Which data to train on.

    Attributes:
        kind: ``synthetic`` (generated shapes with exact masks), ``tiny-imagenet`` (a Tiny
            ImageNet folder) or ``folder`` (an image folder, one sub-folder per class).
        path: the folder for ``tiny-imagenet`` / ``folder``.
        classes: number of classes to use (synthetic and Tiny ImageNet; an image folder uses
            all its class sub-folders).
        seed: dataset seed (split and, for synthetic data, the rendering).
        train_per_class: training images per class (None = the loader's default; synthetic
            and Tiny ImageNet only).
        val_per_class: validation images per class for synthetic data (None = default).
    """

    kind: DatasetKind = "synthetic"
    path: str = ""
    classes: int = 10
    seed: int = 0
    train_per_class: int | None = None
    val_per_class: int | None = None

    def describe(self) -> str:
        if self.kind == "synthetic":
            return f"synthetic shapes ({self.classes} classes, seed {self.seed})"
        return f"{self.kind} folder {self.path}"


@dataclass(frozen=True)
class TrainingJob:
    """Everything one training run needs; built by the panel on the GUI thread.

    ``model_cfg.num_classes`` and ``image_size`` are replaced by the dataset's once it is
    loaded (the user chooses the architecture, the data fixes its input and output sizes).
    """

    model_cfg: Any  # inspector.core.config.ViTConfig
    train_cfg: Any  # inspector.core.config.TrainConfig
    dataset: DatasetSpec
    out_dir: Path
    overwrite: bool = False
    resume: bool = False
    provenance: dict[str, Any] = field(default_factory=dict)


def load_splits(spec: DatasetSpec) -> Any:
    """Load the dataset described by ``spec`` with the core loaders (runs on the worker).

    Returns:
        ``inspector.core.data.types.DatasetSplits``.

    Raises:
        inspector.core.data.DatasetError (a ``ValueError``) or ``OSError`` for a bad folder.
    """
    if spec.kind == "synthetic":
        from inspector.core.data.synthetic import make_synthetic

        kwargs: dict[str, int] = {}
        if spec.train_per_class is not None:
            kwargs["train_per_class"] = spec.train_per_class
        if spec.val_per_class is not None:
            kwargs["val_per_class"] = kwargs["test_per_class"] = spec.val_per_class
        return make_synthetic(seed=spec.seed, num_classes=spec.classes, **kwargs)
    folder = Path(spec.path).expanduser()
    if not spec.path or not folder.is_dir():
        raise FileNotFoundError(f"dataset folder {str(folder)!r} does not exist or is not a folder")
    kwargs = {}
    if spec.train_per_class is not None:
        kwargs["train_per_class"] = spec.train_per_class
    if spec.kind == "tiny-imagenet":
        # The user said what the folder is: load it as such, so a wrong folder gets the
        # Tiny ImageNet loader's precise message (missing wnids.txt, annotations...).
        from inspector.core.data.tiny_imagenet import load_tiny_imagenet

        return load_tiny_imagenet(folder, classes=spec.classes, seed=spec.seed, **kwargs)
    # An image folder: every class sub-folder, split into train / val / test by the loader
    # (it has no per-class limit, so ``classes`` and ``train_per_class`` do not apply).
    from inspector.core.data.image_folder import load_image_folder

    return load_image_folder(folder, seed=spec.seed)


def user_message(exc: BaseException) -> str:
    """A one-line message for the user; the traceback goes to stderr for developers."""
    text = str(exc).strip() or type(exc).__name__
    if is_user_error(exc):
        return text.splitlines()[0]
    return f"unexpected error ({type(exc).__name__}): {text}"


def is_user_error(exc: BaseException) -> bool:
    """Errors with a message meant for the user: the core's own exception classes
    (DatasetError, TrainingError, ConfigError, CheckpointError...) and bad-input builtins."""
    return type(exc).__module__.startswith("inspector.") or isinstance(exc, _USER_ERRORS)


class TrainingWorker(QObject):
    """Runs one :class:`TrainingJob`; lives on a worker ``QThread``.

    Signals (all arguments are plain Python values, safe to use on the GUI thread):
        log(str): a human-readable line (dataset loaded, epoch summary, ...).
        step(dict): throttled step progress: ``epoch, epochs, step, steps_per_epoch,
            global_step, total_steps, loss, lr, images_per_second, elapsed, eta_seconds``.
        epoch(dict): after every epoch: ``epoch, epochs, is_best`` and ``metrics`` (the history
            row the core wrote to ``history.json``).
        done(str, str, str): ``status`` (finished / stopped / diverged / failed), a message,
            and the path of the model to open (``best.pt``; empty when there is none).
    """

    log = Signal(str)
    step = Signal(dict)
    epoch = Signal(dict)
    done = Signal(str, str, str)

    def __init__(
        self, job: TrainingJob, stop: threading.Event, *, min_step_interval_s: float = 0.1
    ) -> None:
        super().__init__()
        self.job = job
        self.stop = stop
        self.min_step_interval_s = min_step_interval_s  # <= ~10 step signals per second
        self._last_step_emit = 0.0
        self._started = 0.0
        self._epochs = job.train_cfg.epochs
        # Set before ``done`` is emitted, so a GUI thread blocked in QThread.wait() (window
        # close) can read the outcome without waiting for the queued signal.
        self.result: tuple[str, str, str] | None = None

    def _finish(self, status: str, message: str, path: str = "") -> None:
        self.result = (status, message, path)
        self.done.emit(status, message, path)

    @Slot()
    def run(self) -> None:
        from inspector.core.train import EpochEvent, StepEvent, train

        try:
            self.log.emit(f"loading {self.job.dataset.describe()} ...")
            t0 = time.perf_counter()
            data = load_splits(self.job.dataset)
            self.log.emit(
                f"loaded {len(data.train)} training and {len(data.val)} validation "
                f"images, {data.train.num_classes} classes "
                f"({time.perf_counter() - t0:.1f} s)"
            )
            if self.stop.is_set():
                self._finish("stopped", "cancelled before training started")
                return
            model_cfg = self.job.model_cfg.replace(
                num_classes=data.train.num_classes, image_size=int(data.train.images.shape[-1])
            )

            def on_event(event: StepEvent | EpochEvent) -> None:
                if isinstance(event, StepEvent):
                    self._on_step(event)
                else:
                    self._on_epoch(event)

            self._started = time.perf_counter()
            result = train(
                model_cfg,
                self.job.train_cfg,
                data,
                self.job.out_dir,
                callback=on_event,
                stop=self.stop,
                resume=self.job.resume,
                overwrite=self.job.overwrite,
                provenance={"data": self.job.dataset.describe(), **self.job.provenance},
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message in the panel
            if not is_user_error(exc):
                traceback.print_exc(file=sys.stderr)  # for developers; the user gets a line
            self._finish("failed", user_message(exc))
            return
        path = ""
        if result.status == "finished" and result.best_path.exists():
            path = str(result.best_path)
        self._finish(result.status, result.message, path)

    # Called on the worker thread from inside the core's loop --------------------------
    def _on_step(self, event: Any) -> None:
        now = time.perf_counter()
        last_of_epoch = event.step == event.steps_per_epoch
        if now - self._last_step_emit < self.min_step_interval_s and not last_of_epoch:
            return  # throttle: the GUI repaints at most ~10 times a second for steps
        self._last_step_emit = now
        elapsed = now - self._started
        remaining = event.total_steps - event.global_step
        # ETA from the average time per step so far (includes the per-epoch validation).
        eta = elapsed / event.global_step * remaining if event.global_step else float("nan")
        self.step.emit(
            {
                "epoch": event.epoch,
                "epochs": self._epochs,
                "step": event.step,
                "steps_per_epoch": event.steps_per_epoch,
                "global_step": event.global_step,
                "total_steps": event.total_steps,
                "loss": float(event.loss),
                "lr": float(event.lr),
                "images_per_second": float(event.images_per_second),
                "elapsed": elapsed,
                "eta_seconds": eta,
            }
        )

    def _on_epoch(self, event: Any) -> None:
        metrics = {
            k: (v.item() if hasattr(v, "item") and not isinstance(v, list) else v)
            for k, v in event.metrics.items()
        }
        self.epoch.emit(
            {
                "epoch": event.epoch,
                "epochs": event.epochs,
                "is_best": event.is_best,
                "metrics": metrics,
            }
        )
