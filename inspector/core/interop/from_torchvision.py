"""torchvision ``vit_b_16`` / ``vit_b_32`` / ``vit_l_16`` / ``vit_l_32`` / ``vit_h_14`` -> our ViT.

torchvision's ``VisionTransformer`` is architecturally the same pre-norm ViT as timm's:
the class token is prepended and ``encoder.pos_embedding`` is added to every token
(class token included), blocks are ``x + MHA(ln_1(x))`` then ``x + MLP(ln_2(x))``, then
``encoder.ln`` and ``heads.head`` on the class token. Key mapping (block ``N``)::

    class_token                         -> cls_token
    conv_proj.{weight,bias}             -> patch_embed.proj.{weight,bias}
    encoder.pos_embedding               -> pos_embed
    ...encoder_layer_N.ln_1 / ln_2      -> blocks.N.norm1 / norm2
    ...self_attention.in_proj_weight    -> blocks.N.attn.qkv.weight   (rows q, k, v stacked)
    ...self_attention.in_proj_bias      -> blocks.N.attn.qkv.bias
    ...self_attention.out_proj          -> blocks.N.attn.proj
    ...mlp.0 / mlp.3 (or linear_1/_2)   -> blocks.N.mlp.fc1 / fc2
    encoder.ln                          -> norm
    heads.head                          -> head

``nn.MultiheadAttention`` splits heads exactly as we do (consecutive ``head_dim`` columns of
q, k and v) and scales by ``head_dim ** -0.5``. Heads are not stored: the standard table
(768:12, 1024:16, 1280:16, ...) or a hint. LayerNorm eps is 1e-6, GELU exact. Input:
ImageNet mean/std, bilinear resize of the short side to ``image * 256/224`` then centre crop
(torchvision's ``IMAGENET1K_V1`` transforms).
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

FAMILY = "torchvision"
_LAYER = "encoder.layers.encoder_layer_{}."


def convert(sd: Mapping[str, torch.Tensor], hints: Hints) -> tuple[ViTConfig, dict, Meta]:
    """Map a torchvision ViT state dict onto our model.

    Args:
        sd: the flat state dict (unwrapped).
        hints: user-provided facts (``heads``).

    Returns:
        ``(config, our_state_dict, meta)``.

    Raises:
        InteropError: missing keys, inconsistent shapes, or unsupported parts (a
            ``heads.pre_logits`` representation layer, a convolutional stem).
    """
    r = KeyReader(sd, FAMILY)
    notes: list[str] = []
    w = r.get("conv_proj.weight")
    if w.ndim != 4 or w.shape[2] != w.shape[3]:
        raise InteropError(
            f"conv_proj.weight has shape {fmt_shape(w.shape)}; expected (D, C, P, P)"
        )
    hidden, in_ch, patch = int(w.shape[0]), int(w.shape[1]), int(w.shape[2])
    depth = count_blocks(sd, r"encoder\.layers\.encoder_layer_(\d+)\.")
    pos = r.get("encoder.pos_embedding")
    if pos.ndim != 3:
        raise InteropError(
            f"encoder.pos_embedding has shape {fmt_shape(pos.shape)}; expected (1, T, D)"
        )
    grid = grid_from_tokens(int(pos.shape[1]), 1, "encoder.pos_embedding", pos.shape)
    l0 = _LAYER.format(0)
    mlp_names = (
        ("mlp.0", "mlp.3") if r.has(l0 + "mlp.0.weight") else ("mlp.linear_1", "mlp.linear_2")
    )
    fc1 = r.get(l0 + mlp_names[0] + ".weight")
    heads, note = infer_heads(hidden, hints, FAMILY)
    notes.append(note)
    cfg = make_config(
        image_size=grid * patch,
        patch_size=patch,
        in_channels=in_ch,
        num_classes=int(r.get("heads.head.weight").shape[0]),
        hidden_size=hidden,
        depth=depth,
        num_heads=heads,
        mlp_ratio=fc1.shape[0] / hidden,
        activation="gelu",
        pos_encoding="learned",
        residual=True,
        layernorm=True,
        qkv_bias=r.has(l0 + "self_attention.in_proj_bias"),
        attn_out_proj=True,
        final_norm=True,
        layer_norm_eps=1e-6,
        distill_token=False,
        output_softmax=False,
    )

    r.copy("cls_token", "class_token")
    r.copy("pos_embed", "encoder.pos_embedding")
    r.copy("patch_embed.proj.weight", "conv_proj.weight")
    r.copy("patch_embed.proj.bias", "conv_proj.bias")
    for i in range(depth):
        src, dst = _LAYER.format(i), f"blocks.{i}."
        pairs = [
            ("ln_1", "norm1"),
            ("ln_2", "norm2"),
            ("self_attention.out_proj", "attn.proj"),
            (mlp_names[0], "mlp.fc1"),
            (mlp_names[1], "mlp.fc2"),
        ]
        for s, d in pairs:
            r.copy(dst + d + ".weight", src + s + ".weight")
            r.copy(dst + d + ".bias", src + s + ".bias")
        r.copy(dst + "attn.qkv.weight", src + "self_attention.in_proj_weight")
        if cfg.qkv_bias:
            r.copy(dst + "attn.qkv.bias", src + "self_attention.in_proj_bias")
    r.copy("norm.weight", "encoder.ln.weight")
    r.copy("norm.bias", "encoder.ln.bias")
    r.copy("head.weight", "heads.head.weight")
    r.copy("head.bias", "heads.head.bias")
    r.check_all_used()

    meta = Meta(
        family=FAMILY,
        preprocess=imagenet_preprocess(cfg.image_size, 224 / 256, "bilinear"),
        notes=notes,
        key_map=r.key_map,
    )
    return cfg, r.out, meta
