"""The ViT against an independent float64 forward pass, formulas and invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from inspector.core.config import PRESETS, ConfigError, ViTConfig, preset
from inspector.core.model import VisionTransformer, sincos_table


def _model(cfg: ViTConfig, seed: int = 0) -> VisionTransformer:
    """A seeded model whose every parameter is non-trivial (LayerNorms are not 1/0,
    biases not 0, tokens larger than init), so that no term can hide in the comparison."""
    torch.manual_seed(seed)
    model = VisionTransformer(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in ("cls_token", "dist_token", "pos_embed"):
                scale = 0.5
            elif p.ndim >= 2:  # weight matrices: keep activations O(1) without LayerNorm
                scale = 1.0 / math.sqrt(p[0].numel())
            else:  # biases, LayerNorm gains and shifts
                scale = 0.3
            p.add_(scale * torch.randn_like(p))
    return model.eval()


def _images(cfg: ViTConfig, batch: int = 2, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, cfg.in_channels, cfg.image_size, cfg.image_size, generator=g)


# ----------------------------------------------------------------------------------------
# Positional tables
# ----------------------------------------------------------------------------------------
def test_sincos_table_matches_float64_formula():
    P, D = 17, 12
    ref = np.zeros((P, D))
    for pos in range(P):
        for i in range(D):
            angle = pos / 10000 ** (2 * (i // 2) / D)
            ref[pos, i] = math.sin(angle) if i % 2 == 0 else math.cos(angle)
    table = sincos_table(P, D)
    assert table.shape == (P, D) and table.dtype == torch.float32
    np.testing.assert_allclose(table.numpy(), ref, atol=1e-7, rtol=0)
    # Position 0: sin(0) = 0 on even channels, cos(0) = 1 on odd ones.
    np.testing.assert_array_equal(table[0].numpy(), np.tile([0.0, 1.0], D // 2))
    # The model stores the table for its own token count (class token at position 0).
    cfg = preset("baseline")
    model = VisionTransformer(cfg)
    np.testing.assert_allclose(
        model.pos_embed[0].numpy(), sincos_table(cfg.num_tokens, cfg.hidden_size).numpy(), atol=0
    )
    assert "pos_embed" not in dict(model.named_parameters())  # fixed, not trained


def test_integer_encoding_adds_token_index_to_every_channel():
    for distill in (False, True):
        cfg = preset("pos-integer", distill_token=distill)
        model = _model(cfg)
        with torch.no_grad():
            # With a zero patch projection and zero prefix tokens, the embedding is only the
            # positional term: token t holds the number t in every channel.
            model.patch_embed.proj.weight.zero_()
            model.patch_embed.proj.bias.zero_()
            model.cls_token.zero_()
            if model.dist_token is not None:
                model.dist_token.zero_()
            tokens = model.embed(_images(cfg))  # (B, T, D)
        T, D = cfg.num_tokens, cfg.hidden_size
        expected = np.broadcast_to(np.arange(T, dtype=np.float32)[:, None], (T, D))
        assert tokens.shape == (2, T, D)
        for b in range(2):
            np.testing.assert_array_equal(tokens[b].numpy(), expected)


# ----------------------------------------------------------------------------------------
# Fast path vs attention path
# ----------------------------------------------------------------------------------------
_EXTRA_CONFIGS = {
    "distill": preset("baseline", distill_token=True),
    "proj+final-norm": preset("baseline", attn_out_proj=True, final_norm=True),
    "pos-none": preset("baseline", pos_encoding="none"),
    "timm-like": ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=24,
        num_heads=3,
        depth=2,
        attn_out_proj=True,
        final_norm=True,
        activation="gelu_tanh",
        layer_norm_eps=1e-6,
        qkv_bias=False,
        num_classes=5,
    ),
    "relu+softmax": preset("heads-2", activation="relu", output_softmax=True),
}
_ALL_CONFIGS = {**{name: preset(name) for name in PRESETS}, **_EXTRA_CONFIGS}


@pytest.mark.parametrize("name", list(_ALL_CONFIGS))
def test_fast_path_agrees_with_attention_path(name):
    cfg = _ALL_CONFIGS[name]
    if cfg.image_size == 64:
        cfg = cfg.replace(image_size=32)  # same architecture, 17 tokens: a faster test
    model = _model(cfg)
    x = _images(cfg, batch=3)
    with torch.no_grad():
        fast = model(x)
        out = model.forward_with_attention(x)
    assert fast.shape == (3, cfg.num_classes)
    # float32 rounding grows with the magnitude (no-layernorm logits reach ~30).
    scale = max(1.0, float(fast.abs().max()))
    torch.testing.assert_close(out.logits, fast, atol=1e-5 * scale, rtol=1e-5)
    assert len(out.attentions) == cfg.depth
    for attn in out.attentions:
        assert attn.shape == (3, cfg.num_heads, cfg.num_tokens, cfg.num_tokens)
        assert bool((attn >= 0).all())
        torch.testing.assert_close(attn.sum(-1), torch.ones(attn.shape[:-1]), atol=1e-5, rtol=0)


def test_all_four_position_encodings_are_covered():
    encodings = {cfg.pos_encoding for cfg in _ALL_CONFIGS.values()}
    assert encodings == {"sincos", "learned", "integer", "none"}


# ----------------------------------------------------------------------------------------
# An independent float64 forward pass
# ----------------------------------------------------------------------------------------
def _layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)  # biased, as LayerNorm defines it
    return (x - mu) / torch.sqrt(var + eps) * w + b


def _activation(kind, x):
    if kind == "relu":
        return torch.clamp(x, min=0)
    if kind == "gelu_tanh":
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def _reference_forward(cfg: ViTConfig, params: dict, x: torch.Tensor):
    """The ViT written out from its definition, in float64, from the raw parameters."""
    p = {k: v.detach().double() for k, v in params.items()}
    x = x.double()
    B, C = x.shape[:2]
    P, D, nh, hd = cfg.patch_size, cfg.hidden_size, cfg.num_heads, cfg.head_dim
    # Patches flattened in (channel, row, column) order, patches in row-major order.
    patches = x.unfold(2, P, P).unfold(3, P, P)  # (B, C, gh, gw, P, P)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(B, cfg.num_patches, C * P * P)
    w_embed = p["patch_embed.proj.weight"].reshape(D, C * P * P)
    tokens = patches @ w_embed.T + p["patch_embed.proj.bias"]  # (B, N, D)
    prefix = [p["cls_token"].expand(B, 1, D)]
    if cfg.distill_token:
        prefix.append(p["dist_token"].expand(B, 1, D))
    z = torch.cat([*prefix, tokens], dim=1)  # (B, T, D)
    T = z.shape[1]
    if cfg.pos_encoding in ("sincos", "learned"):
        z = z + p["pos_embed"]
    elif cfg.pos_encoding == "integer":
        z = z + torch.arange(T, dtype=torch.float64)[None, :, None]

    attentions = []
    for layer in range(cfg.depth):
        pre = f"blocks.{layer}."
        h = (
            _layer_norm(z, p[pre + "norm1.weight"], p[pre + "norm1.bias"], cfg.layer_norm_eps)
            if cfg.layernorm
            else z
        )
        w_qkv = p[pre + "attn.qkv.weight"]  # (3D, D): rows [q | k | v], each split by head
        b_qkv = p.get(pre + "attn.qkv.bias", torch.zeros(3 * D, dtype=torch.float64))
        heads_out, heads_attn = [], []
        for head in range(nh):
            rows = [slice(s * D + head * hd, s * D + (head + 1) * hd) for s in range(3)]
            q, k, v = (h @ w_qkv[r].T + b_qkv[r] for r in rows)  # each (B, T, hd)
            scores = q @ k.transpose(1, 2) / math.sqrt(hd)  # (B, T, T)
            e = torch.exp(scores - scores.max(-1, keepdim=True).values)
            a = e / e.sum(-1, keepdim=True)
            heads_attn.append(a)
            heads_out.append(a @ v)
        attentions.append(torch.stack(heads_attn, dim=1))  # (B, nh, T, T)
        y = torch.cat(heads_out, dim=-1)  # (B, T, D), heads side by side
        if cfg.attn_out_proj:
            y = y @ p[pre + "attn.proj.weight"].T + p[pre + "attn.proj.bias"]
        z = z + y if cfg.residual else y
        h = (
            _layer_norm(z, p[pre + "norm2.weight"], p[pre + "norm2.bias"], cfg.layer_norm_eps)
            if cfg.layernorm
            else z
        )
        m = _activation(cfg.activation, h @ p[pre + "mlp.fc1.weight"].T + p[pre + "mlp.fc1.bias"])
        m = m @ p[pre + "mlp.fc2.weight"].T + p[pre + "mlp.fc2.bias"]
        z = z + m if cfg.residual else m
    if cfg.final_norm:
        z = _layer_norm(z, p["norm.weight"], p["norm.bias"], cfg.layer_norm_eps)
    logits = z[:, 0] @ p["head.weight"].T + p["head.bias"]
    if cfg.distill_token:
        logits = (logits + z[:, 1] @ p["head_dist.weight"].T + p["head_dist.bias"]) / 2
    if cfg.output_softmax:
        logits = torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True)
    return logits, attentions


@pytest.mark.parametrize(
    "name",
    [
        "baseline",
        "no-residual",
        "no-layernorm",
        "pos-integer",
        "pos-learned",
        "timm-like",
        "distill",
    ],
)
def test_matches_independent_float64_forward(name):
    cfg = _ALL_CONFIGS.get(name) or preset(name)
    model = _model(cfg)
    x = _images(cfg)
    ref_logits, ref_attn = _reference_forward(cfg, model.state_dict(), x)
    # In float32 against the float64 reference ...
    with torch.no_grad():
        out = model.forward_with_attention(x)
        fast = model(x)
    scale = float(ref_logits.abs().max()) + 1.0
    np.testing.assert_allclose(
        out.logits.double().numpy(), ref_logits.numpy(), atol=1e-4 * scale, rtol=1e-4
    )
    np.testing.assert_allclose(
        fast.double().numpy(), ref_logits.numpy(), atol=1e-4 * scale, rtol=1e-4
    )
    for got, ref in zip(out.attentions, ref_attn, strict=True):
        np.testing.assert_allclose(got.double().numpy(), ref.numpy(), atol=1e-5, rtol=1e-4)
    # ... and run in float64 the model must agree to rounding.
    model64 = model.double()
    with torch.no_grad():
        out64 = model64.forward_with_attention(x.double())
    np.testing.assert_allclose(out64.logits.numpy(), ref_logits.numpy(), atol=1e-10, rtol=1e-9)
    for got, ref in zip(out64.attentions, ref_attn, strict=True):
        np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-12, rtol=1e-9)


# ----------------------------------------------------------------------------------------
# Gradients with respect to the attention
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["baseline", "distill", "no-layernorm"])
def test_gradients_reach_every_attention_map(name):
    cfg = _ALL_CONFIGS.get(name) or preset(name)
    model = _model(cfg)
    out = model.forward_with_attention(_images(cfg))
    for c in (0, cfg.num_classes - 1):
        grads = torch.autograd.grad(out.logits[:, c].sum(), out.attentions, retain_graph=True)
        assert len(grads) == cfg.depth
        for g, a in zip(grads, out.attentions, strict=True):
            assert g.shape == a.shape
            assert torch.isfinite(g).all() and g.abs().max() > 0
        # The head reads only the prefix tokens, and after the last attention every token
        # is processed on its own (MLP, norms): the logits depend on the last layer's
        # attention only through the prefix query rows.
        k = cfg.num_prefix_tokens
        last = grads[-1]
        assert last[:, :, :k].abs().amax(dim=(-1, -2)).min() > 0
        assert torch.count_nonzero(last[:, :, k:]) == 0


def test_output_softmax_makes_probabilities():
    cfg = preset("baseline")
    model = _model(cfg)
    twin = VisionTransformer(cfg.replace(output_softmax=True))
    twin.load_state_dict(model.state_dict())
    twin.eval()
    x = _images(cfg, batch=4)
    with torch.no_grad():
        probs = twin(x)
        logits = model(x)
    torch.testing.assert_close(probs.sum(-1), torch.ones(4), atol=1e-6, rtol=0)
    assert bool((probs > 0).all())
    e = np.exp(logits.double().numpy())
    np.testing.assert_allclose(probs.numpy(), e / e.sum(-1, keepdims=True), atol=1e-6)


# ----------------------------------------------------------------------------------------
# Sizes and invalid configs
# ----------------------------------------------------------------------------------------
# (depth, heads, hidden, pos_encoding, residual, layernorm) from docs/ARCHITECTURE.md section 5.
_PAPER = {
    "baseline": (4, 4, 8, "sincos", True, True),
    "pos-learned": (4, 4, 8, "learned", True, True),
    "pos-integer": (4, 4, 8, "integer", True, True),
    "blocks-1": (1, 4, 8, "sincos", True, True),
    "blocks-2": (2, 4, 8, "sincos", True, True),
    "blocks-8": (8, 4, 8, "sincos", True, True),
    "heads-1": (4, 1, 8, "sincos", True, True),
    "heads-2": (4, 2, 8, "sincos", True, True),
    "heads-8": (4, 8, 8, "sincos", True, True),
    "hidden-4": (4, 4, 4, "sincos", True, True),
    "hidden-16": (4, 4, 16, "sincos", True, True),
    "hidden-32": (4, 4, 32, "sincos", True, True),
    "no-residual": (4, 4, 8, "sincos", False, True),
    "no-layernorm": (4, 4, 8, "sincos", True, False),
}


def test_presets_have_the_papers_sizes():
    assert set(PRESETS) == set(_PAPER) and len(PRESETS) == 14
    for name, (depth, heads, hidden, pos, residual, layernorm) in _PAPER.items():
        cfg = preset(name)
        assert (
            cfg.depth,
            cfg.num_heads,
            cfg.hidden_size,
            cfg.pos_encoding,
            cfg.residual,
            cfg.layernorm,
        ) == (depth, heads, hidden, pos, residual, layernorm), name
        assert (cfg.image_size, cfg.patch_size, cfg.num_tokens) == (64, 8, 65)
        model = VisionTransformer(cfg)
        assert len(model.blocks) == depth
        for block in model.blocks:
            assert block.attn.num_heads == heads and block.attn.head_dim == hidden // heads
            assert block.attn.qkv.weight.shape == (3 * hidden, hidden)
            assert block.mlp.fc1.weight.shape == (4 * hidden, hidden)
            assert isinstance(block.norm1, torch.nn.LayerNorm) == layernorm
            assert isinstance(block.attn.proj, torch.nn.Identity)  # the paper has none
        assert model.patch_embed.proj.weight.shape == (hidden, 3, 8, 8)
        assert model.head.weight.shape == (10, hidden)
        expected_pos = {"integer": (65, 1)}.get(pos, (1, 65, hidden))
        assert tuple(model.pos_embed.shape) == expected_pos
        assert ("pos_embed" in dict(model.named_parameters())) == (pos == "learned")
        assert isinstance(model.norm, torch.nn.Identity)


def test_invalid_configs_raise_config_error():
    with pytest.raises(ConfigError, match="hidden_size 8 is not divisible by num_heads 3"):
        ViTConfig(hidden_size=8, num_heads=3)
    with pytest.raises(ConfigError, match="image_size 60 is not a multiple of patch_size 8"):
        ViTConfig(image_size=60, patch_size=8)
    with pytest.raises(ConfigError, match="pos_encoding"):
        ViTConfig(pos_encoding="rotary")
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("blocks-3")
    with pytest.raises(ConfigError, match="not divisible"):
        preset("hidden-4", num_heads=8)
