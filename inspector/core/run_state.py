"""A training run's one source of truth: ``run_state.pt``, written atomically every epoch.

Crash consistency by construction: everything a resume needs -- the epoch, the model and
optimiser state, the history, the best epoch's checkpoint and the dataset the run trains on
-- lives in ONE file, replaced atomically (:mod:`inspector.core.atomic`). ``last.pt``,
``best.pt`` and ``history.json`` are *derived* from it, written after it, and repaired from
it on resume. A kill at any instant therefore leaves either the old state (the epoch is
redone, bit-identically: randomness derives from ``(seed, epoch)``) or the new one (the
derived files are rewritten from it); there is no pair of files that can disagree for good.

Layout (``torch.save``, tensors and plain values only: it loads with ``weights_only=True``)::

    {
      "format": "vit-inspector-run-state", "format_version": 1,
      "epoch": int,              # the last completed epoch
      "best_epoch": int,         # the epoch best.pt holds
      "best_acc": float,
      "dataset": {...},          # DatasetSplits.source of the training data
      "last": {...},             # Checkpoint.to_payload() of last.pt
      "best": {...} | None,      # best.pt's payload; None when best_epoch == epoch
      "optimizer": {...},        # optimizer.state_dict()
    }
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import atomic_path
from .checkpoint import (
    Checkpoint,
    CheckpointError,
    checkpoint_from_payload,
    load_checkpoint,
    save_checkpoint,
)
from .safe_load import safe_torch_load

STATE, LAST, BEST, HISTORY = "run_state.pt", "last.pt", "best.pt", "history.json"
LEGACY_STATE = "last_state.pt"  # runs written before run_state.pt (optimiser only)
#: Every file a run folder may hold, for the "already holds a run" check and temp cleaning.
RUN_FILES = (STATE, LEGACY_STATE, LAST, BEST, HISTORY)

_FORMAT, _VERSION = "vit-inspector-run-state", 1


@dataclass(eq=False)
class RunState:
    """What ``run_state.pt`` holds (see the module docstring)."""

    epoch: int
    best_epoch: int
    best_acc: float
    dataset: dict[str, Any]
    last: Checkpoint
    best: Checkpoint  # the same object as ``last`` when best_epoch == epoch
    optimizer: dict[str, Any]

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self.last.history)


def save_run_state(folder: Path, state: RunState) -> None:
    """Replace ``folder/run_state.pt`` atomically: the commit point of an epoch."""
    payload = {
        "format": _FORMAT,
        "format_version": _VERSION,
        "epoch": int(state.epoch),
        "best_epoch": int(state.best_epoch),
        "best_acc": float(state.best_acc),
        "dataset": _plain_json(state.dataset),
        "last": state.last.to_payload(),
        "best": None if state.best is state.last else state.best.to_payload(),
        "optimizer": state.optimizer,
    }
    with atomic_path(folder / STATE, overwrite=True) as tmp:
        torch.save(payload, tmp)


def load_run_state(folder: Path, *, map_location: Any = "cpu") -> RunState | None:
    """The run state in ``folder``, or None when there is none.

    Raises:
        CheckpointError: the file exists but is not a readable run state.
    """
    path = folder / STATE
    if not path.exists() and not path.is_symlink():
        return None
    obj = safe_torch_load(path, map_location=map_location)
    if not isinstance(obj, dict) or obj.get("format") != _FORMAT:
        raise CheckpointError(f"{path} is not a vit-inspector run state")
    if obj.get("format_version") != _VERSION:
        raise CheckpointError(
            f"{path} has run-state version {obj.get('format_version')!r}; this code reads "
            f"version {_VERSION}"
        )
    try:
        last = checkpoint_from_payload(obj["last"], f"{path} (last)")
        best = last if obj["best"] is None else checkpoint_from_payload(obj["best"], path)
        return RunState(
            epoch=int(obj["epoch"]),
            best_epoch=int(obj["best_epoch"]),
            best_acc=float(obj["best_acc"]),
            dataset=dict(obj["dataset"]),
            last=last,
            best=best,
            optimizer=obj["optimizer"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} is a malformed run state ({exc})") from exc


def write_derived(folder: Path, state: RunState, *, best_changed: bool = True) -> None:
    """Write ``last.pt``, then ``best.pt`` (when it changed), then ``history.json``.

    history.json comes last so that a complete history means every derived file is
    complete (the study runner reuses a run on that basis).
    """
    save_checkpoint(folder / LAST, state.last, overwrite=True)
    if best_changed:
        save_checkpoint(folder / BEST, state.best, overwrite=True)
    _write_history(folder, state.history)


def repair_derived(folder: Path, state: RunState) -> list[str]:
    """Rewrite every derived file that does not match ``state``; returns the names fixed.

    A file is right when it holds the state's epoch (``provenance["epoch"]``) with the
    state's weights; history.json when it equals the state's history.
    """
    fixed = []
    for name, ckpt, epoch in (
        (LAST, state.last, state.epoch),
        (BEST, state.best, state.best_epoch),
    ):
        if not _checkpoint_matches(folder / name, ckpt, epoch):
            save_checkpoint(folder / name, ckpt, overwrite=True)
            fixed.append(name)
    if _read_history(folder) != json.loads(_history_text(state.history)):
        _write_history(folder, state.history)
        fixed.append(HISTORY)
    return fixed


def _checkpoint_matches(path: Path, ckpt: Checkpoint, epoch: int) -> bool:
    try:
        on_disk = load_checkpoint(path)
    except CheckpointError:
        return False
    if (
        on_disk.provenance.get("epoch") != epoch
        or on_disk.state_dict.keys() != ckpt.state_dict.keys()
    ):
        return False
    return all(_same_bits(on_disk.state_dict[k], v) for k, v in ckpt.state_dict.items())


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equality (``torch.equal`` calls NaN unequal to itself)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(
        a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8)
    )


def _history_text(history: list[dict[str, Any]]) -> str:
    return json.dumps(history, indent=1, default=_json_default)


def _write_history(folder: Path, history: list[dict[str, Any]]) -> None:
    with atomic_path(folder / HISTORY, overwrite=True) as tmp:
        Path(tmp).write_text(_history_text(history))


def _read_history(folder: Path) -> Any:
    try:
        return json.loads((folder / HISTORY).read_text())
    except (OSError, ValueError):
        return None


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _plain_json(value: Any) -> Any:
    """A dataset description as plain JSON values (paths become strings)."""
    return json.loads(
        json.dumps(
            value,
            default=lambda v: os.fspath(v) if isinstance(v, os.PathLike) else _json_default(v),
        )
    )


def existing_run_files(folder: Path) -> list[str]:
    """The run files ``folder`` already holds (dangling links count: they would be replaced)."""
    return [n for n in RUN_FILES if (folder / n).exists() or (folder / n).is_symlink()]
