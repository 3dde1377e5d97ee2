"""Our self-describing checkpoint format: one file that rebuilds the model without any code.

A ``vit-inspector`` checkpoint is a ``torch.save`` zip file holding one dict of tensors and
plain Python values only, so it loads with ``torch.load(..., weights_only=True)`` and loading
can never execute code::

    {
      "format": "vit-inspector",          # FORMAT_NAME
      "format_version": 1,                # FORMAT_VERSION
      "config": {...},                    # ViTConfig.to_dict()
      "config_digest": "sha256 hex",      # of the config's canonical JSON (absent in old files)
      "state_dict": {name: Tensor},       # contiguous CPU tensors, timm-like names
      "class_names": [str, ...],          # one per output of the head
      "preprocess": {...},                # Preprocess.to_dict(): input size, normalisation
      "train_config": {...} | None,       # TrainConfig.to_dict() or None
      "history": [{metric: number}, ...], # one dict per epoch
      "provenance": {...},                # dataset, seed, code version, git commit, torch, time
    }

Saving is atomic (:mod:`inspector.core.atomic`) and never overwrites silently. Loading
detects, with a distinct message each, a missing file, a file that is not a checkpoint at
all, a truncated file, pickled Python objects (refused), a valid torch file in a foreign
layout (e.g. a plain state dict, which the importers in :mod:`inspector.core.interop` open),
an unsupported format version, an invalid config, and weights that do not fit the config.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .atomic import atomic_path, refuse_overwrite
from .config import ConfigError, Preprocess, ViTConfig
from .model import VisionTransformer
from .safe_load import CheckpointError, safe_torch_load

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "checkpoint_from_payload",
    "config_digest",
    "default_provenance",
    "load_checkpoint",
    "safe_torch_load",
    "save_checkpoint",
]

FORMAT_NAME = "vit-inspector"
FORMAT_VERSION = 1

_REQUIRED_KEYS = ("config", "state_dict", "class_names", "preprocess")
_MAX_LISTED = 8  # keys listed in a mismatch message before "... and N more"


# ----------------------------------------------------------------------------------------
# Provenance
# ----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _git_commit() -> str | None:
    """The commit of the source tree this package runs from, or None (no git, not a repo)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", commit) else None


def default_provenance(*, dataset: Any = None, seed: int | None = None) -> dict[str, Any]:
    """Where a model came from: code version, git commit, torch version, UTC creation time.

    Args:
        dataset: description of the training data (a string or a dict of plain values).
        seed: the random seed of the run.

    Returns:
        A dict of plain values; callers may add keys.
    """
    from inspector import __version__

    return {
        "dataset": dataset,
        "seed": seed,
        "code_version": __version__,
        "git_commit": _git_commit(),
        "torch_version": str(torch.__version__),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _plain(value: Any, where: str) -> Any:
    """Return ``value`` as tensors and plain Python types only (what weights_only accepts).

    numpy scalars/arrays and 0-d tensors in metadata become Python numbers/lists and paths
    become strings, so that training code can log ``np.float32`` metrics without thinking;
    anything else is an error naming where it sits.
    """
    if value is None or type(value) in (bool, int, float, str):
        return value
    # Subclasses (torch's TorchVersion is a str, IntEnum an int) are not on weights_only's
    # allow-list: store the plain base value.
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return base(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Tensor):
        return value.item() if value.ndim == 0 else value.detach().cpu().tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise CheckpointError(f"{where}: dict keys must be strings, got {k!r}")
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise CheckpointError(
        f"{where}: cannot store a {type(value).__name__} in a checkpoint; use numbers, "
        "strings, lists and dicts"
    )


def _cpu_tensor(t: Tensor) -> Tensor:
    """Detached contiguous CPU copy that owns exactly its own storage.

    torch.save writes a view's whole storage, so views (and slices of bigger tensors) are
    cloned to keep the file small.
    """
    t = t.detach().cpu()
    if (
        not t.is_contiguous()
        or t.storage_offset() != 0
        or t.untyped_storage().nbytes() != t.numel() * t.element_size()
    ):
        t = t.contiguous().clone()
    return t


def config_digest(config: Mapping[str, Any]) -> str:
    """SHA-256 of a config dict's canonical JSON (sorted keys, no spaces).

    Heads, residual connections and the positional encoding change the model without
    changing any tensor shape, so the weights alone cannot tell a config that was edited
    after saving; this digest, stored next to the config, can.
    """
    text = json.dumps(dict(config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# ----------------------------------------------------------------------------------------
# The checkpoint
# ----------------------------------------------------------------------------------------
def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(int(s) for s in t.shape)


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    more = len(keys) - _MAX_LISTED
    return shown + (f" ... and {more} more" if more > 0 else "")


@functools.lru_cache(maxsize=16)
def expected_shapes(cfg: ViTConfig) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the state dict a :class:`VisionTransformer` of ``cfg`` has.

    Built on the ``meta`` device (no memory, no random initialisation: milliseconds even for
    ViT-B) and cached per config (configs are frozen, hence hashable).
    """
    with torch.device("meta"):
        model = VisionTransformer(cfg)
    return {k: _shape(v) for k, v in model.state_dict().items()}


def _mismatch_message(
    expected: Mapping[str, tuple[int, ...]], state_dict: Mapping[str, Tensor]
) -> str | None:
    """Describe how ``state_dict`` fails to fit the ``expected`` shapes (None if it fits)."""
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k}: weights {_shape(state_dict[k])} vs config {expected[k]}"
        for k in expected
        if k in state_dict and _shape(state_dict[k]) != expected[k]
    ]
    parts = []
    if missing:
        parts.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        parts.append(f"unexpected keys: {_listing(unexpected)}")
    if wrong:
        parts.append(f"shape mismatch: {_listing(wrong)}")
    return "; ".join(parts) or None


def _float32_weights(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Floating-point tensors as float32, the model's compute type (others unchanged).

    A float64 (or float16) file would otherwise build a float64 model that fails on the
    float32 image tensors with "Input type (float) and bias type (double)". float32 ->
    float64 -> float32 is exact, so a file merely saved as ``.double()`` gives the original.
    """
    return {
        k: v.float() if v.is_floating_point() and v.dtype != torch.float32 else v
        for k, v in state_dict.items()
    }


def _non_finite(state_dict: Mapping[str, Tensor]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity."""
    return [
        k
        for k, v in state_dict.items()
        if v.is_floating_point() and v.numel() and not bool(torch.isfinite(v).all())
    ]


@dataclass(eq=False)  # tensors have no truth value; compare fields explicitly
class Checkpoint:
    """Everything needed to rebuild, run and describe a trained model.

    Attributes:
        config: the architecture.
        state_dict: parameter and buffer tensors by timm-like name.
        class_names: label of each output, ``len == config.num_classes``.
        preprocess: how an image becomes the input (size, resize policy, mean/std).
        train_config: ``TrainConfig.to_dict()`` of the run, or None (e.g. imported models).
        history: one dict of metrics per epoch (numbers or lists of numbers).
        provenance: dataset, seed, code version, git commit, torch version, creation time.
    """

    config: ViTConfig
    state_dict: dict[str, Tensor]
    class_names: list[str]
    preprocess: Preprocess
    train_config: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Raise :class:`CheckpointError` unless the fields are consistent with each other."""
        if not isinstance(self.config, ViTConfig):
            raise CheckpointError(f"config must be a ViTConfig, got {type(self.config).__name__}")
        if not isinstance(self.preprocess, Preprocess):
            raise CheckpointError(
                f"preprocess must be a Preprocess, got {type(self.preprocess).__name__}"
            )
        names = self.class_names
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise CheckpointError("class_names must be a list of strings")
        if len(names) != self.config.num_classes:
            raise CheckpointError(
                f"{len(names)} class names for a model with num_classes={self.config.num_classes}"
            )
        if self.preprocess.image_size != self.config.image_size:
            raise CheckpointError(
                f"preprocess.image_size {self.preprocess.image_size} differs from the model's "
                f"image_size {self.config.image_size}"
            )
        bad = [k for k, v in self.state_dict.items() if not isinstance(v, Tensor)]
        if bad:
            raise CheckpointError(f"state_dict values must be tensors; not for: {_listing(bad)}")
        problem = _mismatch_message(expected_shapes(self.config), self.state_dict)
        if problem:
            raise CheckpointError(f"weights do not match the config: {problem}")

    def build_model(self, device: str | torch.device = "cpu") -> VisionTransformer:
        """A :class:`VisionTransformer` with these weights, in eval mode, on ``device``.

        The module is created on the ``meta`` device and the checkpoint's tensors are
        *assigned* (no random initialisation, no copy: seconds saved for ViT-B on a 2-core
        CPU). On the checkpoint's own device the model therefore shares memory with
        ``state_dict``: train a ``copy.deepcopy`` if the checkpoint must stay unchanged.

        Raises:
            CheckpointError: the state dict does not fit the config (names the missing and
                unexpected keys and, for a shape mismatch, the key and both shapes).
        """
        problem = _mismatch_message(expected_shapes(self.config), self.state_dict)
        if problem:
            raise CheckpointError(f"weights do not match the config: {problem}")
        state_dict = _float32_weights(self.state_dict)
        bad = _non_finite(state_dict)
        if bad:
            raise CheckpointError(
                f"the weights hold NaN or infinite values (in {_listing(bad)}); this model "
                "cannot give meaningful outputs"
            )
        with torch.device("meta"):
            model = VisionTransformer(self.config)
        try:
            model.load_state_dict(state_dict, strict=True, assign=True)
        except RuntimeError as exc:  # e.g. a dtype that cannot be copied
            raise CheckpointError(f"cannot load the weights into the model: {exc}") from exc
        return model.to(device).eval()

    @classmethod
    def from_model(
        cls,
        model: VisionTransformer,
        *,
        class_names: list[str],
        preprocess: Preprocess,
        train_config: Mapping[str, Any] | None = None,
        history: list[Mapping[str, Any]] | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> Checkpoint:
        """Snapshot ``model`` (weights copied to CPU, so later training does not change it).

        Args:
            model: the model; its ``cfg`` becomes the checkpoint's config.
            class_names: one label per output.
            preprocess: the input pipeline the model was trained with.
            train_config: ``TrainConfig.to_dict()`` (a TrainConfig is also accepted).
            history: per-epoch metric dicts.
            provenance: extra or overriding provenance keys (e.g. ``dataset``, ``seed``);
                merged over :func:`default_provenance`.
        """
        if train_config is not None and hasattr(train_config, "to_dict"):
            train_config = train_config.to_dict()
        ckpt = cls(
            config=model.cfg,
            state_dict={
                k: v.detach().to("cpu", copy=True).contiguous()
                for k, v in model.state_dict().items()
            },
            class_names=[str(n) for n in class_names],
            preprocess=preprocess,
            train_config=_plain(dict(train_config), "train_config")
            if train_config is not None
            else None,
            history=_plain(list(history or []), "history"),
            provenance={**default_provenance(), **_plain(dict(provenance or {}), "provenance")},
        )
        ckpt.check()
        return ckpt

    def to_payload(self) -> dict[str, Any]:
        """The dict written to disk: tensors and plain Python values only."""
        self.check()
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "config_digest": config_digest(self.config.to_dict()),
            "state_dict": {k: _cpu_tensor(v) for k, v in self.state_dict.items()},
            "class_names": list(self.class_names),
            "preprocess": self.preprocess.to_dict(),
            "train_config": _plain(self.train_config, "train_config"),
            "history": _plain(list(self.history), "history"),
            "provenance": _plain(dict(self.provenance), "provenance"),
        }


# ----------------------------------------------------------------------------------------
# Saving
# ----------------------------------------------------------------------------------------
def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint, *, overwrite: bool = False) -> Path:
    """Write ``ckpt`` to ``path`` atomically.

    Args:
        path: destination file (conventionally ``*.pt``); its folder must exist.
        ckpt: the checkpoint; checked for consistency first.
        overwrite: allow replacing an existing file.

    Returns:
        The destination path.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        CheckpointError: the checkpoint is inconsistent or holds non-storable metadata.
    """
    dest = Path(path)
    refuse_overwrite(dest, overwrite)  # fail before the (possibly slow) payload is built
    payload = ckpt.to_payload()
    with atomic_path(dest, overwrite=overwrite) as tmp:
        torch.save(payload, tmp)
    return dest


# ----------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------
def _foreign_layout_message(p: Path, obj: Any) -> str:
    """Explain why a valid torch file is not one of ours."""
    if isinstance(obj, Mapping):
        keys = [str(k) for k in obj]
        if keys and all(isinstance(v, Tensor) for v in obj.values()):
            return (
                f"{p} is a PyTorch file but not a vit-inspector checkpoint: it looks like a "
                f"plain state_dict ({len(keys)} tensors, e.g. {_listing(keys[:3])}); foreign "
                "state dicts are opened via the importer (inspector.core.interop)"
            )
        return (
            f"{p} is a PyTorch file but not a vit-inspector checkpoint (no "
            f"format={FORMAT_NAME!r} entry; top-level keys: {_listing(keys)}); foreign "
            "checkpoints are opened via the importer (inspector.core.interop)"
        )
    return (
        f"{p} is a PyTorch file but not a vit-inspector checkpoint: it holds a "
        f"{type(obj).__name__}, not a dict"
    )


def load_checkpoint(path: str | os.PathLike, *, map_location: Any = "cpu") -> Checkpoint:
    """Read a vit-inspector checkpoint without executing any code from the file.

    Args:
        path: the file written by :func:`save_checkpoint`.
        map_location: device for the tensors (default CPU: files saved from CUDA load on
            machines without a GPU).

    Returns:
        The :class:`Checkpoint`, already checked: ``ckpt.build_model()`` will succeed.

    Raises:
        CheckpointError: with a distinct message for a missing file, a non-checkpoint file,
            a truncated file, pickled Python objects, a foreign torch file, an unsupported
            format version, an invalid config and a config/weight mismatch.
    """
    p = Path(path)
    return checkpoint_from_payload(safe_torch_load(p, map_location=map_location), p)


def checkpoint_from_payload(obj: Any, p: str | os.PathLike) -> Checkpoint:
    """The :class:`Checkpoint` in a loaded payload (what :meth:`Checkpoint.to_payload` made).

    Args:
        obj: the object ``torch.load`` returned.
        p: where it came from, for the messages.

    Raises:
        CheckpointError: as :func:`load_checkpoint`.
    """
    p = Path(p)
    if not isinstance(obj, Mapping) or obj.get("format") != FORMAT_NAME:
        raise CheckpointError(_foreign_layout_message(p, obj))
    version = obj.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{p} has vit-inspector format version {version!r}; this code reads version "
            f"{FORMAT_VERSION}"
            + (
                " (it was written by a newer ViT Inspector; upgrade)"
                if isinstance(version, int) and version > FORMAT_VERSION
                else ""
            )
        )
    missing = [k for k in _REQUIRED_KEYS if k not in obj]
    if missing:
        raise CheckpointError(f"{p} is a malformed checkpoint: missing {', '.join(missing)}")

    if not isinstance(obj["config"], Mapping):
        raise CheckpointError(f"{p}: invalid model config: not a dict")
    try:
        config = ViTConfig.from_dict(dict(obj["config"]))
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{p}: invalid model config: {exc}") from exc
    if not isinstance(obj["preprocess"], Mapping):
        raise CheckpointError(f"{p}: invalid preprocess entry: not a dict")
    try:
        preprocess = Preprocess.from_dict(dict(obj["preprocess"]))
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{p}: invalid preprocess entry: {exc}") from exc
    state_dict = obj["state_dict"]
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"{p}: state_dict is a {type(state_dict).__name__}, not a dict")

    ckpt = Checkpoint(
        config=config,
        state_dict=dict(state_dict),
        class_names=list(obj["class_names"])
        if isinstance(obj["class_names"], (list, tuple))
        else obj["class_names"],
        preprocess=preprocess,
        train_config=obj.get("train_config"),
        history=list(obj.get("history") or []),
        provenance=dict(obj.get("provenance") or {}),
    )
    try:
        ckpt.check()
    except CheckpointError as exc:
        raise CheckpointError(f"{p}: {exc}") from exc
    # Last, so that an invalid config or misfitting weights get their own, sharper message.
    # Files written before the digest existed have none and load as before.
    digest = obj.get("config_digest")
    if digest is not None and digest != config_digest(obj["config"]):
        raise CheckpointError(
            f"{p}: the model config does not match the digest saved with the weights, so it "
            "was changed after saving; heads, residuals or the positional encoding can change "
            "without changing any weight shape, so this would load as a different model"
        )
    return ckpt
