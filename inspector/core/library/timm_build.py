"""Which timm architecture a state dict is, and the module built for it.

timm files store weights only. The architecture comes from a *template* (a timm model name
whose non-parametric choices -- activation, norm eps, RoPE, pooling -- the family shares)
plus the sizes the weights show (width, depth, MLP ratio, patch size, grid, registers, heads
where a relative-position table stores them, classes). The template is chosen by keys:

===============================================  =================================
keys                                             template
===============================================  =================================
``layers.0.blocks.0.attn.relative_position_*``    ``swin_tiny_patch4_window7_224``
``blocks.0.attn.relative_position_bias_table``    ``beit_base_patch16_224``
``blocks.0.attn.q_bias`` with a ``pos_embed``     ``eva02_{tiny,small,base,large}_patch14_224``
``attn_pool.latent``                              ``vit_base_patch16_siglip_224``
``norm_pre.weight``                               ``vit_base_patch16_clip_224``
``reg_token`` without ``cls_token``               ``vit_base_patch16_reg4_gap_256``
``blocks.0.ls1.gamma``, patch 14                  ``vit_small_patch14[_reg4]_dinov2``
``blocks.0.ls1.gamma``, patch 16                  ``deit3_small_patch16_224``
===============================================  =================================

A plain timm ViT / DeiT matches none of these and is converted into our own model instead
(:mod:`inspector.core.interop.from_timm`). Where keys cannot tell (e.g. CLIP with QuickGELU,
another window size), ``arch=NAME`` names the timm model exactly. The build is checked by a
strict ``load_state_dict``: a wrong guess is an error naming the keys, never a silent misfit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from . import LibraryError, require

__all__ = ["TimmSpec", "build_timm", "infer_timm"]

# width -> heads, the table every timm ViT of standard width uses (head dim 64)
_HEADS = {192: 3, 384: 6, 768: 12, 1024: 16, 1152: 16, 1280: 16, 1408: 16, 1536: 24}
_EVA = {192: "eva02_tiny_patch14_224", 384: "eva02_small_patch14_224"}
_EVA.update({768: "eva02_base_patch14_224", 1024: "eva02_large_patch14_224"})


@dataclass
class TimmSpec:
    """What to build: a timm model name, keyword overrides, and why."""

    arch: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    swin: bool = False


def _count(sd: Mapping[str, Any], pattern: str) -> int:
    rx = re.compile(pattern)
    found = {int(m.group(1)) for k in sd if (m := rx.match(k))}
    return max(found) + 1 if found else 0


def _heads(width: int, heads: int | None, notes: list[str]) -> int:
    if heads is not None:
        notes.append(f"{heads} attention heads (given)")
        return heads
    if width not in _HEADS:
        raise LibraryError(
            f"the number of attention heads is not stored for width {width}; give it with "
            "heads=N (--heads N)"
        )
    notes.append(f"{_HEADS[width]} attention heads (the standard table for width {width})")
    return _HEADS[width]


def is_library_layout(sd: Mapping[str, torch.Tensor]) -> bool:
    """Whether a timm-style state dict needs the library (not convertible to our ViT)."""
    keys = set(sd)
    if any(k.startswith("layers.0.blocks.0.attn.") for k in keys):
        return True  # Swin
    if "patch_embed.proj.weight" not in keys or not any(k.startswith("blocks.0.") for k in keys):
        return False
    markers = (
        "blocks.0.ls1.gamma",
        "blocks.0.gamma_1",
        "blocks.0.attn.q_bias",
        "blocks.0.attn.relative_position_bias_table",
        "reg_token",
        "norm_pre.weight",
        "attn_pool.latent",
        "fc_norm.weight",
    )
    if any(m in keys for m in markers) or "cls_token" not in keys:
        return True
    if "patch_embed.proj.bias" not in keys:
        return True
    pos = sd.get("pos_embed")
    prefix = 1 + ("dist_token" in keys)
    return pos is not None and math.isqrt(pos.shape[1] - prefix) ** 2 != pos.shape[1] - prefix


def _grid_of(tokens: int, prefix: int) -> tuple[int, bool]:
    """``(grid side, class embedded in pos_embed)`` from the position table's length."""
    if prefix and math.isqrt(tokens - prefix) ** 2 == tokens - prefix:
        return math.isqrt(tokens - prefix), True
    if math.isqrt(tokens) ** 2 == tokens:
        return math.isqrt(tokens), False
    raise LibraryError(f"pos_embed has {tokens} tokens: neither a square grid nor grid + prefix")


def _swin(sd: Mapping[str, torch.Tensor], heads: int | None, notes: list[str]) -> TimmSpec:
    w = sd["patch_embed.proj.weight"]
    stages = _count(sd, r"layers\.(\d+)\.blocks\.")
    depths = tuple(_count(sd, rf"layers\.{s}\.blocks\.(\d+)\.") for s in range(stages))
    tables = [sd[f"layers.{s}.blocks.0.attn.relative_position_bias_table"] for s in range(stages)]
    window = (math.isqrt(int(tables[0].shape[0])) + 1) // 2
    head = sd.get("head.fc.weight")
    kwargs = {
        "embed_dim": int(w.shape[0]),
        "patch_size": int(w.shape[2]),
        "depths": depths,
        "num_heads": tuple(int(t.shape[1]) for t in tables),
        "window_size": window,
        "num_classes": 0 if head is None else int(head.shape[0]),
    }
    notes.append(f"Swin: depths {depths}, heads {kwargs['num_heads']}, window {window}")
    return TimmSpec("swin_tiny_patch4_window7_224", kwargs, notes, swin=True)


def infer_timm(sd: Mapping[str, torch.Tensor], *, heads: int | None = None) -> TimmSpec:
    """The timm architecture of a library-family state dict (see the module text).

    Raises:
        LibraryError: the keys fit no supported family, or the heads cannot be known.
    """
    notes: list[str] = []
    keys = set(sd)
    if any(k.startswith("layers.0.blocks.0.attn.relative_position_bias_table") for k in keys):
        return _swin(sd, heads, notes)
    if "patch_embed.proj.weight" not in keys:
        raise LibraryError("not a timm layout: no patch_embed.proj.weight")
    w = sd["patch_embed.proj.weight"]
    width, patch = int(w.shape[0]), int(w.shape[2])
    depth = _count(sd, r"blocks\.(\d+)\.")
    head = sd.get("head.weight")
    num_classes = 0 if head is None else int(head.shape[0])
    kwargs: dict[str, Any] = {"depth": depth, "num_classes": num_classes, "patch_size": patch}
    table = sd.get("blocks.0.attn.relative_position_bias_table")
    if table is not None and "pos_embed" not in keys:  # BEiT
        g = math.isqrt(int(table.shape[0]) - 3)  # (2g-1)^2 + 3 entries
        kwargs.update(
            embed_dim=width,
            num_heads=int(table.shape[1]),
            mlp_ratio=sd["blocks.0.mlp.fc1.weight"].shape[0] / width,
            img_size=((g + 1) // 2) * patch,
            init_values=0.1 if "blocks.0.gamma_1" in keys else None,
        )
        notes.append("BEiT: heads and grid from the relative position table")
        return TimmSpec("beit_base_patch16_224", kwargs, notes)
    if "blocks.0.attn.q_bias" in keys:  # EVA-02
        if width not in _EVA:
            raise LibraryError(f"no EVA-02 template of width {width}; name it with --arch")
        side, _ = _grid_of(int(sd["pos_embed"].shape[1]), 1)
        kwargs.update(img_size=side * patch)
        notes.append(f"EVA-02 template {_EVA[width]} (RoPE, SwiGLU)")
        return TimmSpec(_EVA[width], kwargs, notes)
    registers = int(sd["reg_token"].shape[1]) if "reg_token" in keys else 0
    has_class = "cls_token" in keys
    prefix = int(has_class) + registers
    side, embedded = _grid_of(int(sd["pos_embed"].shape[1]), prefix)
    kwargs.update(
        embed_dim=width,
        num_heads=_heads(width, heads, notes),
        mlp_ratio=sd["blocks.0.mlp.fc1.weight"].shape[0] / width,
        img_size=side * patch,
        class_token=has_class,
        reg_tokens=registers,
        no_embed_class=not embedded,
        qkv_bias="blocks.0.attn.qkv.bias" in keys,
    )
    if "attn_pool.latent" in keys:
        arch = "vit_base_patch16_siglip_224"
    elif "norm_pre.weight" in keys:
        arch = "vit_base_patch16_clip_224"
    elif registers and not has_class:
        arch = "vit_base_patch16_reg4_gap_256"
    elif "blocks.0.ls1.gamma" in keys and patch == 14:
        arch = "vit_small_patch14_reg4_dinov2" if registers else "vit_small_patch14_dinov2"
    elif "blocks.0.ls1.gamma" in keys:
        arch = "deit3_small_patch16_224"
    else:
        arch = "vit_base_patch16_224"
        kwargs["global_pool"] = "avg" if "fc_norm.weight" in keys else "token"
        kwargs["fc_norm"] = "fc_norm.weight" in keys
    if "blocks.0.ls1.gamma" in keys:
        kwargs["init_values"] = 1e-5  # any value: layer scale exists, the file sets gamma
    notes.append(f"timm template {arch}")
    return TimmSpec(arch, kwargs, notes)


def _strict_load(model: nn.Module, sd: Mapping[str, torch.Tensor], arch: str) -> None:
    result = model.load_state_dict(dict(sd), strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        raise LibraryError(
            f"the weights do not fit timm's {arch}: missing {missing[:6]}, unexpected "
            f"{unexpected[:6]}; name the architecture with --arch"
        )


def build_timm(
    spec: TimmSpec, sd: Mapping[str, torch.Tensor], *, image_size: int | None = None
) -> tuple[nn.Module, int]:
    """Create ``spec``'s module without downloading, load ``sd`` strictly, return it and its
    input side. ``image_size`` other than the file's resamples the position table as timm's
    own loader does (bicubic, prefix tokens kept); Swin and BEiT keep their native size
    (their relative tables are tied to the window / grid)."""
    timm = require("timm")
    kwargs = dict(spec.kwargs)
    native = kwargs.get("img_size")
    sd = dict(sd)
    if image_size is not None and native is not None and image_size != native:
        if "beit" in spec.arch:
            raise LibraryError("BEiT runs at its native size only (relative position table)")
        from timm.layers import resample_abs_pos_embed

        pos = sd["pos_embed"]
        embedded = 0 if kwargs.get("no_embed_class") else 1
        prefix = embedded * (int(kwargs.get("class_token", True)) + kwargs.get("reg_tokens", 0))
        g = image_size // kwargs["patch_size"]
        sd["pos_embed"] = resample_abs_pos_embed(pos, [g, g], num_prefix_tokens=prefix)
        kwargs["img_size"] = image_size
    elif image_size is not None and native is None:
        kwargs["img_size"] = image_size
    try:
        # Built on the meta device (no random initialisation of weights the file replaces:
        # seconds for a ViT-B), then materialised; buffers the file does not hold (relative
        # position indices, RoPE tables, window masks) are recomputed by timm's own hooks.
        with torch.device("meta"):
            model = timm.create_model(spec.arch, pretrained=False, **kwargs)
        model = model.to_empty(device="cpu")
        for m in model.modules():
            init = getattr(m, "init_non_persistent_buffers", None) or getattr(
                m, "_init_buffers", None
            )
            if callable(init):
                init()
    except (TypeError, ValueError, RuntimeError, AssertionError) as exc:
        raise LibraryError(f"timm cannot build {spec.arch} with {kwargs}: {exc}") from exc
    try:
        _strict_load(model, sd, spec.arch)
    except RuntimeError as exc:  # shape mismatch
        first = str(exc).split("\n\t")[1:3]
        raise LibraryError(
            f"the weights do not fit timm's {spec.arch}: {'; '.join(first)}; name the "
            "architecture with --arch (or give --heads)"
        ) from None
    side = int(kwargs.get("img_size") or model.pretrained_cfg["input_size"][-1])
    return model.eval(), side
