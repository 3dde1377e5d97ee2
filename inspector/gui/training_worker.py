"""The training job that the training panel runs, in a separate process (issue 11).

:class:`TrainingProcess` turns a :class:`TrainingJob` (the form's settings as core objects) into
``vit-inspector train ... --events json`` and runs it as a child process
(:mod:`inspector.gui.cli_process`): the child loads the data and trains with the same core loop
as the CLI; its ``StepEvent`` / ``EpochEvent`` lines become signals with plain Python values.
The GUI process never imports the training stack, so its event loop never waits on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PySide6.QtCore import QObject, Signal, Slot

from .cli_process import CliJob

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


def training_args(job: TrainingJob) -> list[str]:
    """The ``vit-inspector train`` arguments that run ``job`` (every setting explicit, so the
    child trains exactly what the form shows, whatever the CLI's defaults)."""
    from inspector.core.config import PRESETS

    m, t, d = job.model_cfg, job.train_cfg, job.dataset
    name = job.provenance.get("preset")
    args = ["train", f"--preset={name if name in PRESETS else 'baseline'}"]
    args += [
        f"--pos-encoding={m.pos_encoding}",
        f"--depth={m.depth}",
        f"--heads={m.num_heads}",
        f"--hidden-size={m.hidden_size}",
    ]
    args += [] if m.residual else ["--no-residual"]
    args += [] if m.layernorm else ["--no-layernorm"]
    args += ["--paper-faithful"] if m.output_softmax else []
    args += [
        f"--epochs={t.epochs}",
        f"--batch-size={t.batch_size}",
        f"--lr={t.lr!r}",
        f"--weight-decay={t.weight_decay!r}",
        f"--optimizer={t.optimizer}",
        f"--warmup={t.warmup_fraction!r}",
        f"--grad-clip={(t.grad_clip or 0.0)!r}",
        f"--device={t.device}",
        f"--seed={t.seed}",
    ]
    if d.kind == "synthetic":
        args += ["--data=synthetic", f"--classes={d.classes}"]
        args += [f"--val-per-class={d.val_per_class}"] if d.val_per_class else []
    else:
        fmt = "tiny-imagenet" if d.kind == "tiny-imagenet" else "image-folder"
        args += [f"--data={Path(d.path).expanduser()}", f"--data-format={fmt}"]
        args += [f"--classes={d.classes}"] if d.kind == "tiny-imagenet" else []
    if d.train_per_class and d.kind != "folder":
        args.append(f"--train-per-class={d.train_per_class}")
    args += ["--resume"] if job.resume else []
    args += ["--overwrite"] if job.overwrite and not job.resume else []
    return [*args, f"--out={job.out_dir}", "--events=json"]


class TrainingProcess(CliJob):
    """Runs one :class:`TrainingJob` as ``vit-inspector train --events json`` in a child
    process (:class:`~inspector.gui.cli_process.CliProcess`), read on the GUI thread.

    Signals (plain Python values):
        log(str): a human-readable line (dataset loaded, epoch summary, ...).
        step(dict): step progress (the child sends at most ~10 a second): ``epoch, epochs,
            step, steps_per_epoch, global_step, total_steps, loss, lr, images_per_second,
            elapsed, eta_seconds``.
        epoch(dict): after every epoch: ``epoch, epochs, is_best`` and ``metrics`` (the history
            row the core wrote to ``history.json``).
        done(str, str, str): ``status`` (finished / stopped / diverged / failed), a message,
            and the path of the model to open (``best.pt``; empty when there is none).
    """

    step = Signal(dict)
    epoch = Signal(dict)
    done = Signal(str, str, str)

    def __init__(self, job: TrainingJob, parent: QObject | None = None) -> None:
        not_started = "cancelled before training started"
        super().__init__(training_args(job), "training", not_started, parent)
        self.job = job
        self._train_started = 0.0  # the child's clock when the data were loaded
        # Set before ``done`` is emitted: window close waits and reads it.
        self.result: tuple[str, str, str] | None = None

    def start(self) -> None:
        verb = "resuming" if self.job.resume else "loading"
        self.log.emit(f"{verb} {self.job.dataset.describe()} in a training process ...")
        super().start()

    @Slot(dict)
    def _on_event(self, e: dict) -> None:
        kind = e["event"]
        if kind == "loaded":
            self._train_started = float(e["elapsed"])
            self.log.emit(
                f"loaded {e['train']} training and {e['val']} validation images, "
                f"{e['classes']} classes ({e['seconds']:.1f} s)"
            )
        elif kind == "step":
            elapsed = float(e["elapsed"]) - self._train_started
            done, total = int(e["global_step"]), int(e["total_steps"])
            # ETA from the average time per step so far (includes the per-epoch validation).
            eta = elapsed / done * (total - done) if done else float("nan")
            keys = ("epoch", "epochs", "step", "steps_per_epoch", "global_step", "total_steps")
            info = {k: int(e[k]) for k in keys}
            for k in ("loss", "lr", "images_per_second"):
                info[k] = float(e[k])
            self.step.emit({**info, "elapsed": elapsed, "eta_seconds": eta})
        elif kind == "epoch":
            keys = ("epoch", "epochs", "is_best", "metrics")
            self.epoch.emit({k: e[k] for k in keys})
        elif kind == "result":
            self._outcome = e

    @Slot(int, bool, str)
    def _on_ended(self, code: int, crashed: bool, error: str) -> None:
        out = self._outcome
        if out is not None:
            status, message = str(out["status"]), str(out["message"])
            path = str(out.get("best") or "") if status == "finished" else ""
        else:
            (status, message), path = self._ended_without_result(code, crashed, error), ""
        self.result = (status, message, path)
        self.done.emit(status, message, path)


def format_eta(seconds: float) -> str:
    """``h:mm:ss`` / ``m:ss`` for a duration; ``--:--`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "--:--"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
