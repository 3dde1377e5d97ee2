"""The seed paper's checkpoints (docs/ARCHITECTURE.md section 5) -> our ViT.

Their model: ``x = [class_token; linear_embedding(patches)] + positional_embedding``; per
block ``x = x + MHSA(norm1(x))``, ``x = x + MLP(norm2(x))`` (sums dropped without residuals,
norms absent without LayerNorm); MHSA with separate ``q/k/v_mapping`` (each ``d x d``, heads
take consecutive ``d / heads`` columns) and **no output projection**; MLP ``mlp.0`` (4d x d),
GELU, ``mlp.2``; the head ``mlp.0`` (classes x d) on the class token followed by a
**softmax inside the model**; **no final LayerNorm**. Mapping::

    class_token                              -> cls_token
    positional_embedding (1, T, d) or (T, 1) -> pos_embed (buffer for sincos/integer,
                                                parameter for learned; values kept as stored)
    linear_embedding.weight (d, C*P*P)       -> patch_embed.proj.weight (d, C, P, P)
    transformer_blocks.N.norm1 / norm2       -> blocks.N.norm1 / norm2
    transformer_blocks.N.mhsa.{q,k,v}_mapping -> blocks.N.attn.qkv (rows q, k, v concatenated)
    transformer_blocks.N.mlp.0 / mlp.2       -> blocks.N.mlp.fc1 / fc2
    mlp.0                                    -> head

Patches are flattened per patch in (channel, row, column) order, which is exactly the
memory order of a ``(d, C, P, P)`` convolution kernel, so the reshape is a view.

The imported model keeps ``output_softmax=True`` to stay faithful: its "logits" are then
probabilities (rows sum to 1). Heads and residuals are invisible in the weights: they come
from the file name ``{heads}_{blocks}_{hidden}_{layernorm}_{residual}[_{pos}].pth`` or from
hints; without either, heads is an error and residuals default to on (with a note).
Inputs were ``ToTensor()`` images: mean 0, std 1.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from ..config import Preprocess, ViTConfig
from ..model import sincos_table
from .common import (
    Hints,
    InteropError,
    KeyReader,
    Meta,
    count_blocks,
    fmt_shape,
    grid_from_tokens,
    make_config,
)

FAMILY = "paper"
_NAME = re.compile(
    r"(?P<heads>\d+)_(?P<blocks>\d+)_(?P<hidden>\d+)_(?P<ln>True|False)_(?P<res>True|False)"
    r"(?:_(?P<pos>learned|integer|sincos|sin|cos|sinusoidal))?"
)


def parse_file_name(path: Path | None) -> dict[str, object] | None:
    """The fields of the paper's file-name convention, or None when the name does not follow it.

    ``4_4_8_True_True.pth`` -> heads 4, blocks 4, hidden 8, layernorm True, residual True,
    pos sincos (absent suffix means sine/cosine); ``..._learned.pth`` -> pos learned.
    """
    if path is None:
        return None
    m = _NAME.fullmatch(path.stem)
    if not m:
        return None
    pos = m.group("pos") or "sincos"
    return {
        "heads": int(m.group("heads")),
        "blocks": int(m.group("blocks")),
        "hidden": int(m.group("hidden")),
        "layernorm": m.group("ln") == "True",
        "residual": m.group("res") == "True",
        "pos": pos if pos in ("learned", "integer") else "sincos",
    }


def convert(sd: Mapping[str, torch.Tensor], hints: Hints) -> tuple[ViTConfig, dict, Meta]:
    """Map one of the paper's state dicts onto our model.

    Args:
        sd: the flat state dict.
        hints: ``heads`` / ``residual`` / ``pos_encoding`` override the file name; ``path``
            is the file (its name carries the convention).

    Returns:
        ``(config, our_state_dict, meta)``.

    Raises:
        InteropError: heads unknown, the name contradicts the weights, missing keys or
            inconsistent shapes.
    """
    r = KeyReader(sd, FAMILY)
    notes: list[str] = []
    named = parse_file_name(hints.path)
    w = r.get("linear_embedding.weight")  # (d, C*P*P)
    in_ch = 3
    flat = int(w.shape[-1])
    patch = int(round((flat / in_ch) ** 0.5))
    if w.ndim != 2 or in_ch * patch * patch != flat:
        raise InteropError(
            f"linear_embedding.weight has shape {fmt_shape(w.shape)}; expected "
            "(d, 3 * P * P) for RGB patches of side P"
        )
    hidden = int(w.shape[0])
    depth = count_blocks(sd, r"transformer_blocks\.(\d+)\.")
    layernorm = r.has("transformer_blocks.0.norm1.weight")
    pos = r.get("positional_embedding")
    if pos.ndim == 2 and pos.shape[1] == 1:
        stored_pos, num_tokens = "integer", int(pos.shape[0])
    elif pos.ndim == 3 and pos.shape[0] == 1 and pos.shape[2] == hidden:
        stored_pos, num_tokens = None, int(pos.shape[1])
    else:
        raise InteropError(
            f"positional_embedding has shape {fmt_shape(pos.shape)}; expected "
            f"(1, T, {hidden}) or (T, 1)"
        )
    grid = grid_from_tokens(num_tokens, 1, "positional_embedding", pos.shape)
    head_w = r.get("mlp.0.weight")

    if named is not None:
        facts = (("blocks", depth), ("hidden", hidden), ("layernorm", layernorm))
        clash = [
            f"{key} {named[key]} in the name vs {actual} in the weights"
            for key, actual in facts
            if named[key] != actual
        ]
        if clash:
            raise InteropError(
                f"the file name {hints.path.name!r} contradicts its weights: "
                f"{'; '.join(clash)}; rename the file or pass the facts as hints"
            )
    # Heads: hint, then file name; the weights cannot tell.
    if hints.heads is not None:
        heads = hints.heads
        notes.append(f"heads = {heads} (given by the user)")
    elif named is not None:
        heads = int(named["heads"])
        notes.append(f"heads = {heads} (from the file name)")
    else:
        raise InteropError(
            "the number of attention heads is not recoverable from the paper's weights and the "
            "file name does not follow {heads}_{blocks}_{hidden}_{layernorm}_{residual}[_{pos}]"
            ".pth; give it with heads=N (CLI --heads N, or the load dialog)"
        )
    if hints.residual is not None:
        residual = hints.residual
    elif named is not None:
        residual = bool(named["residual"])
    else:
        residual = True
        notes.append(
            "residual connections assumed ON (invisible in the weights; the file name "
            "does not say): pass residual=False for a no-residual model"
        )
    # Positional encoding: the (T, 1) shape is integer; otherwise hint, name, then the values.
    if stored_pos == "integer":
        pos_enc = "integer"
    elif hints.pos_encoding in ("sincos", "learned"):
        pos_enc = hints.pos_encoding
    elif named is not None and named["pos"] in ("sincos", "learned"):
        pos_enc = str(named["pos"])
    else:
        is_table = torch.allclose(pos[0].float(), sincos_table(num_tokens, hidden), atol=1e-5)
        pos_enc = "sincos" if is_table else "learned"
        notes.append(f"positional encoding {pos_enc!r} inferred from the stored values")

    cfg = make_config(
        image_size=grid * patch,
        patch_size=patch,
        in_channels=in_ch,
        num_classes=int(head_w.shape[0]),
        hidden_size=hidden,
        depth=depth,
        num_heads=heads,
        mlp_ratio=r.get("transformer_blocks.0.mlp.0.weight").shape[0] / hidden,
        activation="gelu",
        pos_encoding=pos_enc,
        residual=residual,
        layernorm=layernorm,
        qkv_bias=r.has("transformer_blocks.0.mhsa.q_mapping.bias"),
        attn_out_proj=False,
        final_norm=False,
        layer_norm_eps=1e-5,
        distill_token=False,
        output_softmax=True,
    )
    notes.append(
        "the model applies a softmax inside (as the authors' code did): its outputs "
        "are probabilities, not logits"
    )

    r.put("cls_token", r.get("class_token"), "class_token")
    # Stored values are loaded as they are, also into our fixed sincos/integer buffers.
    r.put("pos_embed", pos, "positional_embedding")
    r.put(
        "patch_embed.proj.weight", w.reshape(hidden, in_ch, patch, patch), "linear_embedding.weight"
    )
    r.copy("patch_embed.proj.bias", "linear_embedding.bias")
    for i in range(depth):
        src, dst = f"transformer_blocks.{i}.", f"blocks.{i}."
        pairs = [("mlp.0", "mlp.fc1"), ("mlp.2", "mlp.fc2")]
        if layernorm:
            pairs += [("norm1", "norm1"), ("norm2", "norm2")]
        for s, d in pairs:
            r.copy(dst + d + ".weight", src + s + ".weight")
            r.copy(dst + d + ".bias", src + s + ".bias")
        for suffix in ("weight", "bias") if cfg.qkv_bias else ("weight",):
            qkv = [f"{src}mhsa.{n}_mapping.{suffix}" for n in ("q", "k", "v")]
            r.put(dst + "attn.qkv." + suffix, torch.cat([r.get(k) for k in qkv], dim=0), *qkv)
    r.copy("head.weight", "mlp.0.weight")
    r.copy("head.bias", "mlp.0.bias")
    r.check_all_used()

    meta = Meta(
        family=FAMILY,
        preprocess=Preprocess(
            image_size=cfg.image_size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), policy="resize"
        ),
        notes=notes,
        key_map=r.key_map,
    )
    return cfg, r.out, meta
