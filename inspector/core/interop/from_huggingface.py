"""Hugging Face ``ViTForImageClassification`` / ``ViTModel`` (and DeiT) -> our ViT.

Two key layouts exist: the one on the Hub and written by ``save_pretrained`` (every
transformers version so far), and the in-memory one of transformers >= 5 (what
``torch.save(model.state_dict())`` writes there). Both are read. With ``P`` the model prefix
(``vit.``, ``deit.``, or nothing for a bare ``ViTModel``) and block ``N``::

    P embeddings.cls_token / distillation_token     -> cls_token / dist_token
    P embeddings.position_embeddings                -> pos_embed
    P embeddings.patch_embeddings.projection        -> patch_embed.proj
    P encoder.layer.N.layernorm_before / _after     -> blocks.N.norm1 / norm2
      (or P layers.N.layernorm_before / _after)
    ...attention.attention.query|key|value          -> blocks.N.attn.qkv (rows q, k, v
      (or ...attention.q_proj|k_proj|v_proj)            concatenated)
    ...attention.output.dense   (or attention.o_proj) -> blocks.N.attn.proj
    ...intermediate.dense       (or mlp.fc1)          -> blocks.N.mlp.fc1
    ...output.dense             (or mlp.fc2)          -> blocks.N.mlp.fc2
    P layernorm                                     -> norm
    classifier                                      -> head
    cls_classifier / distillation_classifier (DeiT) -> head / head_dist

HF splits heads as consecutive ``head_dim`` columns of q, k and v, scaled by
``head_dim ** -0.5``: the same as ours, so concatenating the three weights is exact.

``config.json`` next to the weights (when present and consistent with them) gives heads,
LayerNorm eps (default 1e-12), activation and ``id2label``; ``preprocessor_config.json`` gives
mean/std (default 0.5/0.5) and the resize policy. ``ViTModel``'s ``pooler`` is not used by
classification and is ignored; a model without a classifier gets a one-output zero head.
``DeiTForImageClassification`` (one classifier on the class token, plus a distillation
token) is represented exactly by our distilled model with ``head = 2 * classifier`` and a zero
``head_dist``, since our distilled head averages the two: ``(2 W x_0 + 2 b + 0) / 2``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..config import Preprocess, ViTConfig
from .common import (
    Hints,
    InteropError,
    KeyReader,
    Meta,
    count_blocks,
    fmt_shape,
    grid_from_tokens,
    infer_heads,
    make_config,
)

FAMILY = "huggingface"

_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "relu": "relu",
}
# PIL resampling codes used by HF image processors.
_RESAMPLE = {2: "bilinear", 3: "bicubic"}

# Legacy (Hub) names, and the transformers>=5 in-memory names for the same parameters.
_LEGACY = {
    "q": "attention.attention.query",
    "k": "attention.attention.key",
    "v": "attention.attention.value",
    "o": "attention.output.dense",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
}
_V5 = {
    "q": "attention.q_proj",
    "k": "attention.k_proj",
    "v": "attention.v_proj",
    "o": "attention.o_proj",
    "fc1": "mlp.fc1",
    "fc2": "mlp.fc2",
}


def _read_json(path: Path | None, name: str, notes: list[str]) -> dict[str, Any]:
    if path is None:
        return {}
    f = path.parent / name
    if not f.is_file():
        return {}
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        notes.append(f"{name} next to the weights could not be read ({exc}); ignored")
        return {}
    if not isinstance(data, dict):
        notes.append(f"{name} next to the weights is not a JSON object; ignored")
        return {}
    return data


def _model_prefix(sd: Mapping[str, torch.Tensor]) -> str:
    for p in ("vit.", "deit.", ""):
        if f"{p}embeddings.patch_embeddings.projection.weight" in sd:
            return p
    raise InteropError("no embeddings.patch_embeddings.projection.weight key")


def _preprocess(pp: dict[str, Any], image_size: int) -> Preprocess:
    """Preprocess from ``preprocessor_config.json`` (HF ViTImageProcessor defaults otherwise:
    resize straight to the model size, bilinear, mean = std = 0.5)."""
    mean, std = pp.get("image_mean", [0.5] * 3), pp.get("image_std", [0.5] * 3)
    if pp.get("do_normalize", True) is False:
        mean, std = [0.0] * 3, [1.0] * 3
    interpolation = _RESAMPLE.get(pp.get("resample", 2), "bilinear")
    policy, resize_size = "resize", None
    if pp.get("do_center_crop"):
        size = pp.get("size", {})
        edge = size.get("shortest_edge") or size.get("height") if isinstance(size, dict) else size
        if isinstance(edge, int) and edge >= image_size:
            policy, resize_size = "resize_crop", edge
    return Preprocess(
        image_size=image_size,
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        policy=policy,  # type: ignore[arg-type]
        resize_size=resize_size,
        interpolation=interpolation,
    )  # type: ignore[arg-type]


def _class_names(cfg_json: dict[str, Any], num_classes: int, notes: list[str]) -> list[str] | None:
    id2label = cfg_json.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        return None
    try:
        names = [str(id2label[k]) for k in sorted(id2label, key=lambda k: int(k))]
    except (TypeError, ValueError):
        notes.append("config.json id2label has non-integer ids; ignored")
        return None
    if len(names) != num_classes:
        notes.append(
            f"config.json id2label has {len(names)} labels for a {num_classes}-way head; ignored"
        )
        return None
    if all(re.fullmatch(r"LABEL_\d+", n) for n in names):
        return None  # transformers' placeholder labels carry no information
    return names


def convert(sd: Mapping[str, torch.Tensor], hints: Hints) -> tuple[ViTConfig, dict, Meta]:
    """Map a Hugging Face ViT/DeiT state dict onto our model.

    Args:
        sd: the flat state dict (unwrapped).
        hints: ``heads`` overrides config.json; ``path`` locates config.json and
            preprocessor_config.json.

    Returns:
        ``(config, our_state_dict, meta)``.

    Raises:
        InteropError: missing keys, inconsistent shapes, unsupported activation or parts.
    """
    r = KeyReader(sd, FAMILY)
    notes: list[str] = []
    p = _model_prefix(sd)
    emb = p + "embeddings."
    w = r.get(emb + "patch_embeddings.projection.weight")
    if w.ndim != 4 or w.shape[2] != w.shape[3]:
        raise InteropError(
            f"{emb}patch_embeddings.projection.weight has shape "
            f"{fmt_shape(w.shape)}; expected (D, C, P, P)"
        )
    hidden, in_ch, patch = int(w.shape[0]), int(w.shape[1]), int(w.shape[2])
    if any(k.startswith(p + "encoder.layer.") for k in sd):
        block, names = p + "encoder.layer.{}.", _LEGACY
        depth = count_blocks(sd, re.escape(p) + r"encoder\.layer\.(\d+)\.")
    else:
        block, names = p + "layers.{}.", _V5
        depth = count_blocks(sd, re.escape(p) + r"layers\.(\d+)\.")
    distilled = r.has(emb + "distillation_token")
    prefix = 2 if distilled else 1
    pos = r.get(emb + "position_embeddings")
    if pos.ndim != 3:
        raise InteropError(
            f"{emb}position_embeddings has shape {fmt_shape(pos.shape)}; expected (1, T, D)"
        )
    grid = grid_from_tokens(int(pos.shape[1]), prefix, emb + "position_embeddings", pos.shape)
    b0 = block.format(0)
    fc1 = r.get(b0 + names["fc1"] + ".weight")

    cfg_json = _read_json(hints.path, "config.json", notes)
    if cfg_json and (
        cfg_json.get("hidden_size", hidden) != hidden
        or cfg_json.get("num_hidden_layers", depth) != depth
    ):
        notes.append(
            f"config.json next to the weights describes another model (hidden "
            f"{cfg_json.get('hidden_size')}, layers {cfg_json.get('num_hidden_layers')}"
            f" vs {hidden}, {depth} in the weights); ignored"
        )
        cfg_json = {}
    if hints.heads is None and isinstance(cfg_json.get("num_attention_heads"), int):
        heads = cfg_json["num_attention_heads"]
        notes.append(f"heads = {heads} (from config.json)")
    else:
        heads, note = infer_heads(hidden, hints, FAMILY)
        notes.append(note)
    act_name = cfg_json.get("hidden_act", "gelu")
    if act_name not in _ACTIVATIONS:
        raise InteropError(
            f"config.json hidden_act {act_name!r} is not supported "
            f"(supported: {', '.join(_ACTIVATIONS)})"
        )
    eps = float(cfg_json.get("layer_norm_eps", 1e-12))
    if "layer_norm_eps" not in cfg_json:
        notes.append("LayerNorm eps 1e-12 assumed (transformers' ViT default; no config.json)")

    if r.has("cls_classifier.weight"):  # DeiTForImageClassificationWithTeacher
        head_key, dist_key, doubled = "cls_classifier", "distillation_classifier", False
    else:
        head_key, dist_key, doubled = "classifier", None, distilled
    headless = not r.has(head_key + ".weight")
    num_classes = 1 if headless else int(r.get(head_key + ".weight").shape[0])

    cfg = make_config(
        image_size=grid * patch,
        patch_size=patch,
        in_channels=in_ch,
        num_classes=num_classes,
        hidden_size=hidden,
        depth=depth,
        num_heads=heads,
        mlp_ratio=fc1.shape[0] / hidden,
        activation=_ACTIVATIONS[act_name],
        pos_encoding="learned",
        residual=True,
        layernorm=True,
        qkv_bias=r.has(b0 + names["q"] + ".bias"),
        attn_out_proj=True,
        final_norm=True,
        layer_norm_eps=eps,
        distill_token=distilled,
        output_softmax=False,
    )

    r.copy("cls_token", emb + "cls_token")
    if distilled:
        r.copy("dist_token", emb + "distillation_token")
    r.copy("pos_embed", emb + "position_embeddings")
    r.copy("patch_embed.proj.weight", emb + "patch_embeddings.projection.weight")
    r.copy("patch_embed.proj.bias", emb + "patch_embeddings.projection.bias")
    for i in range(depth):
        src, dst = block.format(i), f"blocks.{i}."
        pairs = [
            ("layernorm_before", "norm1"),
            ("layernorm_after", "norm2"),
            (names["o"], "attn.proj"),
            (names["fc1"], "mlp.fc1"),
            (names["fc2"], "mlp.fc2"),
        ]
        for s, d in pairs:
            r.copy(dst + d + ".weight", src + s + ".weight")
            r.copy(dst + d + ".bias", src + s + ".bias")
        for suffix in ("weight", "bias") if cfg.qkv_bias else ("weight",):
            qkv = [src + names[n] + "." + suffix for n in ("q", "k", "v")]
            r.put(dst + "attn.qkv." + suffix, torch.cat([r.get(k) for k in qkv], dim=0), *qkv)
    r.copy("norm.weight", p + "layernorm.weight")
    r.copy("norm.bias", p + "layernorm.bias")
    if headless:
        notes.append(
            "the file has no classifier (a bare ViTModel): a one-output zero head "
            "was added; class-specific maps are meaningless for it"
        )
        for h in ("head", "head_dist") if distilled else ("head",):
            r.put(f"{h}.weight", torch.zeros(1, hidden), "(none: headless model)")
            r.put(f"{h}.bias", torch.zeros(1), "(none: headless model)")
    elif doubled:
        # Our distilled head averages two heads; (2 W x0 + 2 b + 0 x1 + 0) / 2 = W x0 + b.
        hw, hb = r.get(head_key + ".weight"), r.get(head_key + ".bias")
        r.put("head.weight", 2 * hw, head_key + ".weight")
        r.put("head.bias", 2 * hb, head_key + ".bias")
        r.put("head_dist.weight", torch.zeros_like(hw), "(zero: classifier on class token only)")
        r.put("head_dist.bias", torch.zeros_like(hb), "(zero: classifier on class token only)")
        notes.append(
            "classifier reads only the class token: stored as head = 2 x classifier "
            "and a zero distillation head (our distilled head averages the two)"
        )
    else:
        r.copy("head.weight", head_key + ".weight")
        r.copy("head.bias", head_key + ".bias")
        if dist_key:
            r.copy("head_dist.weight", dist_key + ".weight")
            r.copy("head_dist.bias", dist_key + ".bias")
    if r.ignore(re.escape(p) + r"pooler\.dense\.(weight|bias)"):
        notes.append(
            "ViTModel pooler (dense + tanh on the class token) ignored: "
            "classification does not use it"
        )
    if r.ignore(re.escape(emb) + "mask_token"):
        notes.append("mask_token (masked image modelling only) ignored")
    r.check_all_used()

    pp_json = _read_json(hints.path, "preprocessor_config.json", notes)
    if not pp_json:
        notes.append(
            "no preprocessor_config.json: resize to the model size, mean = std = 0.5 "
            "(transformers' ViTImageProcessor defaults)"
        )
    meta = Meta(
        family=FAMILY,
        preprocess=_preprocess(pp_json, cfg.image_size),
        class_names=None if headless else _class_names(cfg_json, num_classes, notes),
        headless=headless,
        notes=notes,
        key_map=r.key_map,
    )
    return cfg, r.out, meta
