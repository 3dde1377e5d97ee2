"""timm ``VisionTransformer`` / DeiT (incl. distilled) state dicts -> our ViT.

Our parameter names are timm's, so the mapping is the identity; the work is inferring the
architecture, which timm files do not store:

* hidden size ``D`` and patch size ``P`` from ``patch_embed.proj.weight`` ``(D, C, P, P)``;
* depth from the ``blocks.N`` indices; MLP ratio from ``blocks.0.mlp.fc1.weight`` ``(M, D)``;
* the distillation token from ``dist_token`` (DeiT-distilled, then ``head_dist`` too);
* image size from ``pos_embed`` ``(1, prefix + (H/P)^2, D)``;
* heads: not stored -- the standard table (192:3, 384:6, 768:12, 1024:16, 1280:16) or a hint;
* LayerNorm eps 1e-6 and exact GELU (timm's ViT defaults), qkv bias if present.

A timm model built with ``num_classes=0`` has no head: we keep a one-output zero head so the
model still runs (see :mod:`inspector.core.interop`, "headless models").

Defaults for the input: ImageNet mean/std, bicubic resize to ``D/0.875`` and centre crop --
the DeiT convention; timm's original/augreg ``vit_*`` weights use mean = std = 0.5, which the
file cannot reveal (override with ``preprocess=``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..config import ViTConfig
from .common import (
    Hints,
    InteropError,
    KeyReader,
    Meta,
    count_blocks,
    fmt_shape,
    grid_from_tokens,
    imagenet_preprocess,
    infer_heads,
    make_config,
)

FAMILY = "timm"


def convert(sd: Mapping[str, torch.Tensor], hints: Hints) -> tuple[ViTConfig, dict, Meta]:
    """Map a timm ViT/DeiT state dict onto our model.

    Args:
        sd: the flat state dict (unwrapped).
        hints: user-provided facts (``heads``).

    Returns:
        ``(config, our_state_dict, meta)``.

    Raises:
        InteropError: a key is missing, a shape is inconsistent, or the file is a timm variant
            with parts our model does not have (the message lists those keys).
    """
    r = KeyReader(sd, FAMILY)
    notes: list[str] = []
    w = r.get("patch_embed.proj.weight")
    if w.ndim != 4 or w.shape[2] != w.shape[3]:
        raise InteropError(
            f"patch_embed.proj.weight has shape {fmt_shape(w.shape)}; expected (D, C, P, P)"
        )
    hidden, in_ch, patch = int(w.shape[0]), int(w.shape[1]), int(w.shape[2])
    depth = count_blocks(sd, r"blocks\.(\d+)\.")
    distilled = r.has("dist_token")
    prefix = 2 if distilled else 1
    pos = r.get("pos_embed")
    if pos.ndim != 3:
        raise InteropError(f"pos_embed has shape {fmt_shape(pos.shape)}; expected (1, T, D)")
    grid = grid_from_tokens(int(pos.shape[1]), prefix, "pos_embed", pos.shape)
    fc1 = r.get("blocks.0.mlp.fc1.weight")
    heads, note = infer_heads(hidden, hints, FAMILY)
    notes.append(note)
    headless = not r.has("head.weight")
    num_classes = 1 if headless else int(r.get("head.weight").shape[0])
    attn_out_proj = r.has("blocks.0.attn.proj.weight")
    final_norm = r.has("norm.weight")
    if not attn_out_proj:
        notes.append("no attention output projection in the file (blocks.N.attn.proj absent)")
    if not final_norm:
        notes.append("no final LayerNorm in the file (norm absent)")

    cfg = make_config(
        image_size=grid * patch,
        patch_size=patch,
        in_channels=in_ch,
        num_classes=num_classes,
        hidden_size=hidden,
        depth=depth,
        num_heads=heads,
        mlp_ratio=fc1.shape[0] / hidden,
        activation="gelu",
        pos_encoding="learned",
        residual=True,
        layernorm=True,
        qkv_bias=r.has("blocks.0.attn.qkv.bias"),
        attn_out_proj=attn_out_proj,
        final_norm=final_norm,
        layer_norm_eps=1e-6,
        distill_token=distilled,
        output_softmax=False,
    )

    for key in ("cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"):
        r.copy(key, key)
    if distilled:
        r.copy("dist_token", "dist_token")
    for i in range(depth):
        b = f"blocks.{i}."
        for part in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
            r.copy(b + part + ".weight", b + part + ".weight")
            r.copy(b + part + ".bias", b + part + ".bias")
        r.copy(b + "attn.qkv.weight", b + "attn.qkv.weight")
        if cfg.qkv_bias:
            r.copy(b + "attn.qkv.bias", b + "attn.qkv.bias")
        if attn_out_proj:
            r.copy(b + "attn.proj.weight", b + "attn.proj.weight")
            r.copy(b + "attn.proj.bias", b + "attn.proj.bias")
    if final_norm:
        r.copy("norm.weight", "norm.weight")
        r.copy("norm.bias", "norm.bias")
    heads_out = ("head", "head_dist") if distilled else ("head",)
    for h in heads_out:
        if headless:
            r.put(f"{h}.weight", torch.zeros(1, hidden), "(none: headless model)")
            r.put(f"{h}.bias", torch.zeros(1), "(none: headless model)")
        else:
            r.copy(f"{h}.weight", f"{h}.weight")
            r.copy(f"{h}.bias", f"{h}.bias")
    # Identity modules in timm leave no keys; empty "fc_norm"/"head_drop" never appear.
    r.check_all_used()

    meta = Meta(
        family=FAMILY,
        preprocess=imagenet_preprocess(cfg.image_size, 0.875, "bicubic"),
        headless=headless,
        notes=notes,
        key_map=r.key_map,
    )
    notes.append(
        "input normalisation defaults to ImageNet mean/std (DeiT); timm's original "
        "vit_* weights used mean = std = 0.5 -- override if yours did"
    )
    return cfg, r.out, meta
