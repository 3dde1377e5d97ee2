"""timm families opened from plain state dicts and checked against timm itself, random weights.

Per family: the file's architecture is inferred from its keys and shapes; predictions equal
timm's own (fused-attention) forward of an independently built model; every layer's captured
attention equals an explicit float64 recomputation from the module's own parameters and
inputs; the gradient ``dy/dA`` (as ``dy/dA * A``) equals an autograd reference that multiplies
each attention by a ones tensor and differentiates with respect to it; the relevance map
read out for the model's output row equals the one built from that reference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

timm = pytest.importorskip("timm")

from inspector.core.capture import capture  # noqa: E402
from inspector.core.explain import open_model  # noqa: E402
from inspector.core.saliency._readout import capture_output_weights, readout_map  # noqa: E402

FAMILIES = {
    "dinov2": ("vit_small_patch14_dinov2", {"depth": 2}),
    "dinov2-reg": ("vit_small_patch14_reg4_dinov2", {"depth": 2}),
    "deit3": ("deit3_small_patch16_224", {"depth": 2}),
    "eva02": ("eva02_tiny_patch14_224", {"depth": 2}),
    "beit": ("beit_base_patch16_224", {"depth": 2, "embed_dim": 192, "num_heads": 3}),
    "clip": ("vit_base_patch16_clip_224", {"depth": 2, "embed_dim": 192, "num_heads": 3}),
    "siglip": ("vit_base_patch16_siglip_224", {"depth": 2, "embed_dim": 192, "num_heads": 3}),
    "reg-gap": ("vit_base_patch16_reg4_gap_256", {"depth": 2, "embed_dim": 192, "num_heads": 3}),
    "swin": (
        "swin_tiny_patch4_window7_224",
        {"depths": (2, 2, 2, 2), "embed_dim": 24, "num_heads": (3, 3, 3, 3)},
    ),
}


def _reference_model(name: str, kwargs: dict, sd: dict, image_size: int) -> nn.Module:
    """An independent timm model with the file's weights, at the size we run (DINOv2's table
    resampled by timm's own function, as its loader does)."""
    kw = dict(kwargs, num_classes=10)
    if "dinov2" in name:
        from timm.layers import resample_abs_pos_embed

        kw["img_size"] = image_size
        g = image_size // 14
        sd = dict(sd)
        prefix = 0 if "reg" in name else 1
        sd["pos_embed"] = resample_abs_pos_embed(sd["pos_embed"], [g, g], num_prefix_tokens=prefix)
    ref = timm.create_model(name, pretrained=False, **kw)
    ref.load_state_dict(sd)
    return ref.eval()


@pytest.fixture(scope="module", params=list(FAMILIES))
def opened(request, tmp_path_factory):
    name, kwargs = FAMILIES[request.param]
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10, **kwargs).eval()
    # Perturb layer scale / biases so that a wrongly mapped parameter could not hide.
    with torch.no_grad():
        for k, p in model.named_parameters():
            if k.endswith(("gamma", "gamma_1", "gamma_2", "q_bias", "v_bias")):
                p.uniform_(0.5, 1.5)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp(request.param) / f"{request.param}.pth"
    torch.save(sd, path)
    loaded = open_model(path)
    side = loaded.checkpoint.config.image_size
    ref = _reference_model(name, kwargs, sd, side)
    torch.manual_seed(1)
    x = torch.randn(1, 3, side, side)
    return request.param, name, loaded, ref, x


def test_architecture_is_inferred(opened):
    family, name, loaded, _, _ = opened
    assert loaded.checkpoint.config.arch == name
    if "dinov2" in family:
        assert loaded.checkpoint.config.grid == (16, 16)  # patch 14 at 224 px


def test_predictions_equal_timm_forward(opened):
    _, _, loaded, ref, x = opened
    cap = capture(loaded.model, x)
    with torch.no_grad():
        expected = ref(x).softmax(-1)[0]  # timm's own forward, fused attention
    assert torch.allclose(cap.probabilities, expected, atol=1e-4)
    assert cap.predicted_class == int(expected.argmax())


def _record_attention_inputs(model: nn.Module) -> list[tuple[nn.Module, tuple, dict]]:
    calls: list[tuple[nn.Module, tuple, dict]] = []
    for m in model.modules():
        if hasattr(m, "attn_drop") and hasattr(m, "qkv"):
            m.register_forward_pre_hook(
                lambda mod, args, kwargs: calls.append((mod, args, kwargs)), with_kwargs=True
            )
    return calls


def _explicit_attention(mod: nn.Module, args: tuple, kwargs: dict) -> torch.Tensor:
    """softmax(q k^T * scale + bias) from the module's parameters, in float64."""
    x = args[0]
    B, N, _ = x.shape
    h = mod.num_heads
    bias = mod.qkv.bias
    if getattr(mod, "q_bias", None) is not None:  # BEiT / EVA: split q / v biases, no k bias
        bias = torch.cat([mod.q_bias, torch.zeros_like(mod.q_bias), mod.v_bias])
    q, k, _ = F.linear(x, mod.qkv.weight, bias).reshape(B, N, 3, h, -1).permute(2, 0, 3, 1, 4)
    rope = kwargs.get("rope")
    if rope is not None:  # EVA-02: rotary embedding on the patch tokens
        from timm.layers import apply_rot_embed_cat

        n = mod.num_prefix_tokens
        q = torch.cat([q[:, :, :n], apply_rot_embed_cat(q[:, :, n:], rope)], dim=2)
        k = torch.cat([k[:, :, :n], apply_rot_embed_cat(k[:, :, n:], rope)], dim=2)
    logits = (q * mod.scale) @ k.transpose(-2, -1)
    if hasattr(mod, "relative_position_bias_table"):
        logits = logits + mod._get_rel_pos_bias()
    mask = kwargs.get("mask", args[1] if len(args) > 1 else None)
    if mask is not None:  # Swin's shifted-window mask (nW, N, N)
        nW = mask.shape[0]
        logits = (logits.view(-1, nW, h, N, N) + mask[None, :, None]).view(-1, h, N, N)
    return logits.softmax(-1)


def test_attention_equals_explicit_recomputation(opened):
    family, _, loaded, ref, x = opened
    cap = capture(loaded.model, x)
    ref64 = ref.double()
    calls = _record_attention_inputs(ref64)
    with torch.no_grad():
        ref64(x.double())
        explicit = [_explicit_attention(*c) for c in calls]
    ref.float()
    adapter = loaded.model
    if family == "swin":  # the capture holds the last stage, scattered from its windows
        last = explicit[-adapter.num_layers :]
        full = [adapter._full(a, adapter._index[b], 1) for b, a in enumerate(last)]
        expected = torch.cat(full).float()
        windows = adapter.last_extras["windows"]
        got = torch.cat([windows[key].detach() for key in sorted(windows)])
        assert torch.allclose(got, torch.cat(explicit).float(), atol=1e-5)
    else:
        expected = torch.cat(explicit).float()  # (L, heads, T, T)
    assert cap.attentions.shape == expected.shape
    assert torch.allclose(cap.attentions, expected, atol=1e-5)


class _Ones(nn.Module):
    """Multiplies the attention by a ones tensor M: d y / d M = A * d y / d A."""

    def __init__(self, store: list) -> None:
        super().__init__()
        self.store = store

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        m = torch.ones_like(a, requires_grad=True)
        self.store.append(m)
        return a * m


def _autograd_reference(ref: nn.Module, x: torch.Tensor, c: int) -> list[torch.Tensor]:
    store: list[torch.Tensor] = []
    for m in ref.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = False
        if hasattr(m, "attn_drop") and hasattr(m, "qkv"):
            m.attn_drop = _Ones(store)
    logits = ref(x)
    return list(torch.autograd.grad(logits[0, c], store))


def test_gradients_and_relevance_equal_autograd_reference(opened):
    family, _, loaded, ref, x = opened
    cap = capture(loaded.model, x)
    c = int(cap.predicted_class)
    g_times_a = _autograd_reference(ref, x, c)  # per attention module: A * dy/dA
    adapter = loaded.model
    if family == "swin":
        g_times_a = [
            adapter._full(g, adapter._index[b], 1)
            for b, g in enumerate(g_times_a[-adapter.num_layers :])
        ]
    expected = torch.cat(g_times_a)  # (L, h, T, T)
    got = cap.gradients(c) * cap.attentions
    scale = float(expected.abs().max())
    assert scale > 0
    assert torch.allclose(got, expected, atol=1e-5 * max(1.0, scale))
    if family == "swin":
        return
    # Relevance (Chefer et al.) for the model's output row, from the reference gradients.
    fused = np.clip(expected.numpy().astype(np.float64), 0, None).mean(axis=1)  # (L, T, T)
    r = np.eye(fused.shape[-1])
    for m in fused:
        r = r + m @ r
    w = capture_output_weights(cap)
    v = (w @ r - w)[cap.token_layout.patch_slice].reshape(cap.grid_size)
    np.testing.assert_allclose(
        readout_map(cap, "relevance", rescale=False), v, rtol=1e-4, atol=1e-6 * v.max()
    )


def test_token_layouts():
    """The layout each family declares, as the capture sees it."""
    expected = {
        "vit_small_patch14_reg4_dinov2": (("class",) + ("register",) * 4, "class"),
        "vit_base_patch16_siglip_224": ((), "attention-pool"),
        "vit_base_patch16_reg4_gap_256": (("register",) * 4, "mean"),
        "eva02_tiny_patch14_224": (("class",), "mean"),
    }
    from inspector.core.library.timm_vit import TimmViTAdapter

    for name, (prefix, pooling) in expected.items():
        kw = {"depth": 1} if "eva" in name or "dinov2" in name else dict(FAMILIES["clip"][1])
        kw["depth"] = 1
        m = timm.create_model(name, pretrained=False, num_classes=3, **kw)
        side = 224 if "256" not in name else 256
        patch = m.patch_embed.proj.weight.shape[-1]
        layout = TimmViTAdapter(m, patch_size=patch, image_size=side).token_layout
        assert (layout.prefix, layout.pooling) == (prefix, pooling), name
        assert layout.num_prefix_tokens == m.num_prefix_tokens
        assert layout.num_patches == (side // patch) ** 2
        if pooling != "attention-pool":  # the pool's weights come with a forward pass
            assert math.isclose(capture_weights_sum(layout), 1.0)


def capture_weights_sum(layout) -> float:
    from inspector.core.token_layout import output_weights

    return float(output_weights(layout).sum())
