"""Open any supported ViT checkpoint as our own :class:`~inspector.core.checkpoint.Checkpoint`.

One entry point, :func:`open_checkpoint`, accepts

* our own format (delegated to :func:`inspector.core.checkpoint.load_checkpoint`);
* timm ``VisionTransformer`` / DeiT (distilled too), torchvision ``vit_*``, Hugging Face
  ``ViTForImageClassification`` / ``ViTModel`` (and DeiT), and the seed paper's layout
  (docs/ARCHITECTURE.md section 5),

as ``.pth .pt .bin .ckpt`` (``torch.save``) or ``.safetensors`` files, plain or wrapped under
``model`` / ``state_dict`` / ``module.`` (see :mod:`.detect`). Imported weights go into our one
:class:`~inspector.core.model.VisionTransformer` class, so capture and every saliency method
work the same on all of them. timm, torchvision and transformers are not needed to load:
only ``torch`` (and ``safetensors`` for ``.safetensors`` files).

What the weights cannot tell has a per-family default that the caller can override: heads
(family table or file name; ``heads=``), class names (ImageNet-1k for 1000-way heads, HF
``id2label``, the paper's 10 classes; ``class_names=``), input preprocessing (``preprocess=``).
Everything decided, and where it came from, is kept in ``ckpt.provenance`` (``imported_from``,
``import_notes``), so "Save as" in our format remembers it.

Headless models (timm ``num_classes=0``, HF ``ViTModel``): our config needs at least one class,
so such a model gets a one-output **zero** head named ``"(no classifier head)"`` and
``provenance["headless"] = True``. Attention capture, rollout and last-layer maps work; class-
specific gradient maps are zero and should be disabled by callers for these models.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..checkpoint import (
    FORMAT_NAME,
    Checkpoint,
    CheckpointError,
    default_provenance,
    load_checkpoint,
)
from ..config import Preprocess, ViTConfig
from ..model import sincos_table
from . import from_huggingface, from_paper, from_timm, from_torchvision
from .common import (
    HEADLESS_CLASS_NAME,
    Hints,
    InteropError,
    Meta,
    as_float32,
    default_class_names,
    imagenet_class_names,
    validate_against_model,
)
from .detect import FAMILIES, SUFFIXES, detect_family, read_file, unwrap_state_dict

__all__ = [
    "FAMILIES",
    "SUFFIXES",
    "Hints",
    "InteropError",
    "convert_state_dict",
    "detect_family",
    "imagenet_class_names",
    "open_checkpoint",
    "resample_pos_embed",
]

Converter = Callable[[Mapping[str, torch.Tensor], Hints], tuple[ViTConfig, dict, Meta]]
CONVERTERS: dict[str, Converter] = {
    "timm": from_timm.convert,
    "torchvision": from_torchvision.convert,
    "huggingface": from_huggingface.convert,
    "paper": from_paper.convert,
}


def convert_state_dict(
    sd: Mapping[str, torch.Tensor],
    hints: Hints | None = None,
    family: str | None = None,
) -> tuple[ViTConfig, dict[str, torch.Tensor], Meta]:
    """Convert an in-memory foreign state dict (no file involved).

    Args:
        sd: flat state dict of a supported family.
        hints: facts the weights cannot tell (heads, ...).
        family: skip detection and use this family's converter.

    Returns:
        ``(config, our_state_dict, meta)``; the state dict fits ``VisionTransformer(config)``
        exactly (checked; a shape mismatch names the file's key and both shapes).

    Raises:
        InteropError: unknown layout, missing keys, shape mismatch, unsupported variant.
    """
    hints = hints or Hints()
    family = family or detect_family(sd, hints.path)
    if family not in CONVERTERS:
        raise InteropError(f"unknown family {family!r}; choose from {', '.join(CONVERTERS)}")
    cfg, state, meta = CONVERTERS[family](sd, hints)
    as_float32(state, meta.notes)
    validate_against_model(cfg, state, meta.key_map, family)
    return cfg, state, meta


def _check_class_names(names: Sequence[str], cfg: ViTConfig, source: str) -> list[str]:
    names = [str(n) for n in names]
    if len(names) != cfg.num_classes:
        raise InteropError(
            f"the checkpoint's classification head has {cfg.num_classes} outputs but "
            f"{len(names)} class names were given ({source}); give exactly one name per output"
        )
    return names


def _check_preprocess(pre: Preprocess, cfg: ViTConfig) -> Preprocess:
    if not isinstance(pre, Preprocess):
        raise InteropError(f"preprocess must be a Preprocess, got {type(pre).__name__}")
    if pre.image_size != cfg.image_size:
        raise InteropError(
            f"the given preprocess has image_size {pre.image_size} but the model takes "
            f"{cfg.image_size}x{cfg.image_size} inputs; use resample_pos_embed() first to run "
            "the model at another size"
        )
    return pre


def open_checkpoint(
    path: str | os.PathLike,
    *,
    heads: int | None = None,
    class_names: Sequence[str] | None = None,
    preprocess: Preprocess | None = None,
    device: str | torch.device = "cpu",
    residual: bool | None = None,
    pos_encoding: str | None = None,
) -> Checkpoint:
    """Open our own checkpoint or a foreign ViT's weights as a :class:`Checkpoint`.

    Args:
        path: ``.pth .pt .bin .ckpt .safetensors`` file.
        heads: attention heads, for layouts that do not store them (the paper's, or a timm /
            torchvision file of non-standard width); overrides the family default.
        class_names: one name per head output; overrides the family default.
        preprocess: input pipeline; overrides the family default (its ``image_size`` must
            equal the model's).
        device: where the weights go (files saved from CUDA tensors load anywhere).
        residual: the paper's layout only, when the file name does not carry it.
        pos_encoding: the paper's layout only (``sincos`` / ``learned``), same.

    Returns:
        The checkpoint; ``provenance["imported_from"]`` names the family (``"vit-inspector"``
        for our own files) and ``provenance["import_notes"]`` lists every assumption made.

    Raises:
        InteropError: (a ``ValueError``) for every problem: missing or unreadable file,
            pickled objects (refused, never unpickled), unknown layout (lists recognised and
            unrecognised keys), shape mismatch (names the key and both shapes), class names
            that disagree with the head, unknown heads.
    """
    p = Path(path)
    obj, st_metadata = read_file(p)
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT_NAME:
        try:
            ckpt = load_checkpoint(p, map_location=device)
        except CheckpointError as exc:
            raise InteropError(str(exc)) from exc
        ckpt.provenance.setdefault("imported_from", FORMAT_NAME)
        if class_names is not None:
            ckpt.class_names = _check_class_names(class_names, ckpt.config, "class_names=")
        if preprocess is not None:
            ckpt.preprocess = _check_preprocess(preprocess, ckpt.config)
        return ckpt

    sd, where = unwrap_state_dict(obj, p)
    hints = Hints(heads=heads, residual=residual, pos_encoding=pos_encoding, path=p)
    cfg, state, meta = convert_state_dict(sd, hints)

    if class_names is not None:
        names = _check_class_names(class_names, cfg, "class_names=")
    elif meta.headless:
        names = [HEADLESS_CLASS_NAME]
    elif meta.class_names is not None:
        names = _check_class_names(meta.class_names, cfg, "from the checkpoint's config")
    else:
        names = default_class_names(cfg.num_classes, meta.family)
    pre = _check_preprocess(preprocess, cfg) if preprocess is not None else meta.preprocess

    dev = torch.device(device)
    if dev.type != "cpu":
        state = {k: v.to(dev) for k, v in state.items()}
    provenance: dict[str, Any] = {
        **default_provenance(),
        "imported_from": meta.family,
        "source_file": str(p),
        "unwrapped": where or None,
        "headless": meta.headless,
        "import_notes": list(meta.notes),
    }
    if st_metadata:
        provenance["safetensors_metadata"] = dict(st_metadata)
    # convert_state_dict validated every key and shape already, names and preprocess were
    # checked above: no second ckpt.check().
    return Checkpoint(
        config=cfg,
        state_dict=state,
        class_names=names,
        preprocess=pre,
        train_config=None,
        history=[],
        provenance=provenance,
    )


def _resample_grid(pos: torch.Tensor, prefix: int, old: int, new: int) -> torch.Tensor:
    """``(1, prefix + old^2, D)`` -> ``(1, prefix + new^2, D)``, grid part resampled bicubically,
    prefix tokens kept as they are -- what timm's ``resample_abs_pos_embed`` does: PyTorch's
    antialiased bicubic (the PIL kernel, a = -0.5, also when enlarging), ``align_corners=False``."""
    head, grid = pos[:, :prefix], pos[:, prefix:]
    D = grid.shape[-1]
    img = grid.reshape(1, old, old, D).permute(0, 3, 1, 2).float()  # (1, D, g, g)
    img = F.interpolate(img, size=(new, new), mode="bicubic", align_corners=False, antialias=True)
    grid = img.permute(0, 2, 3, 1).reshape(1, new * new, D).to(pos.dtype)  # (1, g'^2, D)
    return torch.cat([head, grid], dim=1)


def resample_pos_embed(ckpt: Checkpoint, new_image_size: int) -> Checkpoint:
    """The same model for ``new_image_size`` inputs: positions resampled, all else kept.

    Learned tables: the patch-grid part is resampled bicubically (2-D, on the grid), prefix
    tokens (class, distillation) keep their vectors. Fixed tables (sine/cosine, integer) are
    regenerated for the new token count. The preprocess follows (``resize_size`` scaled
    by the same factor). The input checkpoint is not modified.

    Args:
        ckpt: the checkpoint.
        new_image_size: the new input side in pixels, a multiple of the patch size.

    Raises:
        InteropError: ``new_image_size`` is not a positive multiple of the patch size.
    """
    cfg = ckpt.config
    if (
        not isinstance(new_image_size, int)
        or new_image_size < cfg.patch_size
        or new_image_size % cfg.patch_size
    ):
        raise InteropError(
            f"new image size {new_image_size!r} must be a positive multiple of "
            f"the patch size {cfg.patch_size}"
        )
    new_cfg = cfg.replace(image_size=new_image_size)
    state = dict(ckpt.state_dict)
    pos = state.get("pos_embed")
    if pos is not None and new_image_size != cfg.image_size:
        if cfg.pos_encoding == "learned":
            state["pos_embed"] = _resample_grid(
                pos, cfg.num_prefix_tokens, cfg.grid_size, new_cfg.grid_size
            )
        elif cfg.pos_encoding == "sincos":
            state["pos_embed"] = sincos_table(new_cfg.num_tokens, cfg.hidden_size)[None].to(pos)
        elif cfg.pos_encoding == "integer":
            state["pos_embed"] = torch.arange(
                new_cfg.num_tokens, dtype=pos.dtype, device=pos.device
            )[:, None]
    pre = ckpt.preprocess
    resize = pre.resize_size
    if resize is not None:
        resize = int(math.floor(resize * new_image_size / cfg.image_size + 1e-6))
    new_pre = replace(pre, image_size=new_image_size, resize_size=resize)
    provenance = {
        **ckpt.provenance,
        "pos_embed_resampled": {"from": cfg.image_size, "to": new_image_size},
    }
    validate_against_model(new_cfg, state, {}, "resampled")
    return Checkpoint(
        config=new_cfg,
        state_dict=state,
        class_names=list(ckpt.class_names),
        preprocess=new_pre,
        train_config=ckpt.train_config,
        history=list(ckpt.history),
        provenance=provenance,
    )
