"""Read a weights file safely, unwrap it to a flat ``state_dict`` and name its family.

Reading never executes code from the file:

* ``.pth`` / ``.pt`` / ``.bin`` (``torch.save`` files) go through
  ``torch.load(weights_only=True, mmap=True, map_location="cpu")``: only tensors and plain
  containers are unpickled, tensors are memory-mapped (a 330 MB ViT-B loads in milliseconds)
  and files written from CUDA tensors land on the CPU;
* ``.safetensors`` files are read with the ``safetensors`` package (imported only then).

A whole pickled ``nn.Module`` (``torch.save(model)``) is refused before any of its classes is
looked up, with instructions to save ``model.state_dict()`` instead.

Families are told apart by characteristic keys (after unwrapping ``model`` / ``state_dict``
containers and ``module.`` prefixes):

=============  ==========================================================================
family         signature keys
=============  ==========================================================================
timm           ``patch_embed.proj.weight``, ``blocks.0.attn.qkv.weight``
torchvision    ``conv_proj.weight``, ``encoder.layers.encoder_layer_0.self_attention...``
huggingface    ``[vit.|deit.]embeddings.patch_embeddings.projection.weight``
paper          ``linear_embedding.weight``, ``transformer_blocks.0.mhsa.q_mapping.weight``
=============  ==========================================================================
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..safe_load import CheckpointError, PickledObjectError, safe_torch_load
from .common import InteropError, summarise

__all__ = [
    "FAMILIES",
    "SUFFIXES",
    "detect_family",
    "read_file",
    "unwrap_state_dict",
]

SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")
FAMILIES = ("timm", "torchvision", "huggingface", "paper")

# Containers that training scripts wrap a state dict in, most specific first.
_WRAPPER_KEYS = (
    "state_dict",
    "model_state_dict",
    "model",
    "module",
    "state_dict_ema",
    "model_ema",
    "net",
    "network",
)
# Prefixes added by DataParallel / DistributedDataParallel, torch.compile and Lightning
# (whose LightningModule usually holds the network as `self.model`).
_PREFIXES = ("module.", "_orig_mod.", "model.")

_SAVE_STATE_DICT = (
    "Save the weights only, e.g. `torch.save(model.state_dict(), "
    "'weights.pth')`, and open that file."
)

# Key patterns per family: used to detect a layout and, for unknown files, to say which keys
# were recognised.
_PATTERNS: dict[str, list[str]] = {
    "timm": [
        r"cls_token",
        r"dist_token",
        r"pos_embed",
        r"patch_embed\.proj\.(weight|bias)",
        r"blocks\.\d+\.(norm1|norm2)\.(weight|bias)",
        r"blocks\.\d+\.attn\.(qkv|proj)\.(weight|bias)",
        r"blocks\.\d+\.mlp\.(fc1|fc2)\.(weight|bias)",
        r"norm\.(weight|bias)",
        r"head(_dist)?\.(weight|bias)",
    ],
    "torchvision": [
        r"class_token",
        r"conv_proj\.(weight|bias)",
        r"encoder\.pos_embedding",
        r"encoder\.layers\.encoder_layer_\d+\.(ln_1|ln_2)\.(weight|bias)",
        r"encoder\.layers\.encoder_layer_\d+\.self_attention\.(in_proj_weight|in_proj_bias)",
        r"encoder\.layers\.encoder_layer_\d+\.self_attention\.out_proj\.(weight|bias)",
        r"encoder\.layers\.encoder_layer_\d+\.mlp\.(0|3|linear_1|linear_2)\.(weight|bias)",
        r"encoder\.ln\.(weight|bias)",
        r"heads\.head\.(weight|bias)",
    ],
    "huggingface": [
        r"((vit|deit)\.)?embeddings\.(cls_token|distillation_token|mask_token|position_embeddings)",
        r"((vit|deit)\.)?embeddings\.patch_embeddings\.projection\.(weight|bias)",
        r"((vit|deit)\.)?encoder\.layer\.\d+\..*",
        r"((vit|deit)\.)?layers\.\d+\..*",
        r"((vit|deit)\.)?layernorm\.(weight|bias)",
        r"((vit|deit)\.)?pooler\.dense\.(weight|bias)",
        r"(classifier|cls_classifier|distillation_classifier)\.(weight|bias)",
    ],
    "paper": [
        r"class_token",
        r"positional_embedding",
        r"linear_embedding\.(weight|bias)",
        r"transformer_blocks\.\d+\.(norm1|norm2)\.(weight|bias)",
        r"transformer_blocks\.\d+\.mhsa\.(q|k|v)_mapping\.(weight|bias)",
        r"transformer_blocks\.\d+\.mlp\.(0|2)\.(weight|bias)",
        r"mlp\.0\.(weight|bias)",
    ],
}
_COMPILED = {f: [re.compile(p) for p in ps] for f, ps in _PATTERNS.items()}


def _refuse_pickled_object(path: Path, detail: str) -> InteropError:
    return InteropError(
        f"refused to load {path}: it contains pickled Python objects ({detail}), most likely a "
        f"whole model saved with torch.save(model). Unpickling it could run arbitrary code, so "
        f"it was not unpickled. {_SAVE_STATE_DICT}"
    )


def _read_torch(path: Path) -> Any:
    """The one safe torch load (:func:`inspector.core.safe_load.safe_torch_load`), memory-mapped,
    with its errors in the importer's words."""
    try:
        return safe_torch_load(path, mmap=True)
    except PickledObjectError as exc:
        what = f"it needs the class {exc.needs}" if exc.needs else "not only tensors"
        raise _refuse_pickled_object(path, what) from exc
    except CheckpointError as exc:
        raise InteropError(str(exc)) from exc


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        from safetensors import SafetensorError
        from safetensors.torch import safe_open
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InteropError(
            f"{path} is a .safetensors file, which needs the 'safetensors' package: "
            "pip install safetensors"
        ) from exc
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            metadata = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 -- not a dict
    except (SafetensorError, OSError, ValueError) as exc:
        raise InteropError(f"{path} is not a readable safetensors file: {exc}") from exc
    return tensors, metadata


def read_file(path: str | os.PathLike) -> tuple[Any, dict[str, str]]:
    """Load what a weights file holds, on the CPU, without executing code from it.

    Args:
        path: a ``.pth``/``.pt``/``.bin``/``.ckpt`` (torch.save) or ``.safetensors`` file.

    Returns:
        ``(obj, metadata)``: the loaded object (usually a dict) and the safetensors header
        metadata (empty for torch files).

    Raises:
        InteropError: missing file, unknown suffix, unreadable or corrupt file, or a pickled
            Python object (refused, with instructions to save a ``state_dict``).
    """
    p = Path(path)
    if not p.exists():
        raise InteropError(f"checkpoint file not found: {p}")
    if not p.is_file():
        raise InteropError(f"not a file: {p}")
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise InteropError(
            f"{p}: unsupported file type {p.suffix!r}; expected one of {', '.join(SUFFIXES)}"
        )
    if suffix == ".safetensors":
        return _read_safetensors(p)
    return _read_torch(p), {}


def _strip_prefixes(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Remove ``module.`` / ``_orig_mod.`` prefixes shared by every key (possibly nested)."""
    removed: list[str] = []
    changed = True
    while changed and sd:
        changed = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix) :]: v for k, v in sd.items()}
                removed.append(prefix)
                changed = True
    return sd, removed


def unwrap_state_dict(obj: Any, path: Path | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """Find the flat ``{name: Tensor}`` dict inside what a file holds.

    Training scripts save ``{"model": sd, "optimizer": ..., "epoch": ...}``,
    ``{"state_dict": sd}`` and friends; DataParallel prefixes every key with ``module.``.

    Args:
        obj: the loaded object.
        path: the file, for messages.

    Returns:
        ``(state_dict, where)`` with ``where`` describing the unwrapping (e.g. ``"['model']"``,
        ``"['state_dict'], prefix 'module.' removed"``), empty when nothing was unwrapped.

    Raises:
        InteropError: no dict of tensors could be found.
    """
    where: list[str] = []
    for _ in range(4):  # wrappers nest at most a few levels deep
        if not isinstance(obj, Mapping):
            break
        tensors = {
            k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)
        }
        if tensors and len(tensors) >= len(obj) / 2:
            # Mostly tensors: this is the state dict (stray entries like "_metadata" dropped).
            sd, removed = _strip_prefixes(tensors)
            where += [f"prefix {p!r} removed" for p in removed]
            return sd, ", ".join(where)
        inner = next((k for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        where.append(f"[{inner!r}]")
        obj = obj[inner]
    name = f"{path}" if path else "the file"
    if isinstance(obj, Mapping):
        keys = [str(k) for k in obj]
        raise InteropError(
            f"{name} holds a dict without weights in it (keys: {summarise(keys)}); expected a "
            f"state_dict or one wrapped under {', '.join(repr(k) for k in _WRAPPER_KEYS[:4])}"
        )
    raise InteropError(f"{name} holds a {type(obj).__name__}, not a state_dict (a dict of tensors)")


def _matches(family: str, key: str) -> bool:
    return any(rx.fullmatch(key) for rx in _COMPILED[family])


def detect_family(sd: Mapping[str, torch.Tensor], path: Path | None = None) -> str:
    """Name the layout of a flat state dict: ``timm``, ``torchvision``, ``huggingface`` or
    ``paper``.

    Raises:
        InteropError: no family's signature keys are present; the message lists which keys
            the closest family recognised and which it did not.
    """
    keys = set(sd)
    if {"linear_embedding.weight", "transformer_blocks.0.mhsa.q_mapping.weight"} <= keys:
        return "paper"
    if "conv_proj.weight" in keys and any(
        k.startswith("encoder.layers.encoder_layer_0.self_attention.") for k in keys
    ):
        return "torchvision"
    if any(
        re.fullmatch(r"((vit|deit)\.)?embeddings\.patch_embeddings\.projection\.weight", k)
        for k in keys
    ):
        return "huggingface"
    if {"patch_embed.proj.weight", "blocks.0.attn.qkv.weight"} <= keys:
        return "timm"

    ordered = sorted(keys)
    scores = {f: [k for k in ordered if _matches(f, k)] for f in FAMILIES}
    best = max(FAMILIES, key=lambda f: len(scores[f]))
    recognised = scores[best]
    unrecognised = [k for k in ordered if k not in set(recognised)]
    name = f"{path}" if path else "the state dict"
    if not recognised:
        detail = f"none of its {len(ordered)} keys is recognised: {summarise(ordered)}"
    else:
        detail = (
            f"closest layout is {best}: recognised {len(recognised)} of {len(ordered)} keys "
            f"({summarise(recognised)}); not recognised: {summarise(unrecognised)}"
        )
    raise InteropError(
        f"unknown checkpoint layout in {name}: {detail}. Supported: our own format, timm "
        "VisionTransformer/DeiT, torchvision vit_*, Hugging Face ViT, and the seed paper's layout"
    )
