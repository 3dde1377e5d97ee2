"""Gradient targets on a saturated model whose forward ends in a softmax (the paper's layout).

References are float64 autograd recomputations on a float64 copy of the same model: the
logit target is d z_c / dA with z the input to the model's softmax, the probability target is
d p_c / dA. A probability gradient that underflows even in float64 gives an all-zero map, which
the pipeline flags.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from inspector.core.capture import ViTAdapter, capture
from inspector.core.config import ViTConfig
from inspector.core.model import VisionTransformer
from inspector.core.pipeline import degenerate_flags
from inspector.core.saliency import MapSettings, compute_map, grad_rollout, relevance


def _saturated(gain: float) -> tuple[VisionTransformer, torch.Tensor]:
    """A small softmax-ending ViT whose head is scaled so its output saturates in float32."""
    torch.manual_seed(3)
    cfg = ViTConfig(
        image_size=16,
        patch_size=4,
        hidden_size=16,
        depth=3,
        num_heads=4,
        num_classes=6,
        output_softmax=True,
    )
    model = VisionTransformer(cfg).eval()
    with torch.no_grad():
        model.head.weight.mul_(gain)
        model.head.bias.zero_()
    return model, torch.randn(1, 3, 16, 16)


def _reference(model: VisionTransformer, x: torch.Tensor, c: int, target: str):
    """float64 attention and d y_c / dA by plain autograd."""
    m64 = copy.deepcopy(model).double()
    out = m64.forward_with_attention(x.double())
    z = out.pre_softmax[0]  # the input to the model's softmax
    y = z[c] if target == "logit" else z.softmax(-1)[c]
    grads = torch.autograd.grad(y, out.attentions)
    attn = torch.stack([a[0].detach() for a in out.attentions])
    return attn.numpy(), torch.stack([g[0] for g in grads]).numpy(), z.detach()


def test_the_output_is_saturated_in_float32():
    model, x = _saturated(gain=500.0)
    with torch.no_grad():
        p = model(x)[0]
    assert float(p.max()) == 1.0  # float32 rounds the winning probability to exactly 1
    _, _, z = _reference(model, x, 0, "logit")
    gap = float(z.max() - z.topk(2).values[1])
    # Saturated in float32 (1 - p_c < 3e-8 rounds away), yet float64 still resolves
    # 1 - p_c ~ e^-gap to ~1e-8 relative: a float64 reference of d p / dA stays exact.
    assert 17.5 < gap < 25, gap


def test_default_logit_target_equals_float64_d_logit_and_is_not_zero():
    model, x = _saturated(gain=500.0)
    cap = capture(ViTAdapter(model), x)
    c = cap.predicted_class
    attn64, g64, _ = _reference(model, x, c, "logit")
    got = compute_map(cap, settings=MapSettings(method="relevance"))  # target defaults to logit
    want = relevance(attn64, g64, num_prefix_tokens=1, grid=(4, 4))
    assert got.max() == pytest.approx(1.0)
    np.testing.assert_allclose(got, want, atol=2e-5)
    np.testing.assert_allclose(cap.gradients(c).numpy(), g64, rtol=1e-4, atol=1e-6)


def test_probability_target_equals_float64_d_probability():
    model, x = _saturated(gain=500.0)
    cap = capture(ViTAdapter(model), x)
    c = cap.predicted_class
    attn64, g64, _ = _reference(model, x, c, "probability")
    # The naive float32 gradient of the model's own softmax output is wrong here.
    out = model.forward_with_attention(x)
    naive = torch.stack([g[0] for g in torch.autograd.grad(out.logits[0, c], out.attentions)])
    err = np.abs(naive.numpy() - g64).max() / np.abs(g64).max()
    assert err > 0.1, err
    got = cap.gradients(c, "probability").numpy()
    np.testing.assert_allclose(got, g64, rtol=1e-4, atol=1e-5 * np.abs(g64).max())
    for method, reference in (("relevance", relevance), ("grad-rollout", grad_rollout)):
        settings = MapSettings(method=method, target="probability", discard_ratio=0.0)
        mine = compute_map(cap, settings=settings)
        theirs = reference(attn64, g64, num_prefix_tokens=1, grid=(4, 4))
        np.testing.assert_allclose(mine, theirs, atol=2e-5, err_msg=method)


def test_log_probability_target_equals_float64_reference():
    model, x = _saturated(gain=500.0)
    cap = capture(ViTAdapter(model), x)
    c = (cap.predicted_class + 1) % 6  # a losing class: log p_c has a large gradient
    m64 = copy.deepcopy(model).double()
    out = m64.forward_with_attention(x.double())
    grads = torch.autograd.grad(out.pre_softmax[0].log_softmax(-1)[c], out.attentions)
    g64 = torch.stack([g[0] for g in grads]).numpy()
    np.testing.assert_allclose(
        cap.gradients(c, "log-probability").numpy(), g64, rtol=1e-4, atol=1e-7
    )


def test_an_underflowed_probability_gradient_gives_an_all_zero_map_that_is_flagged():
    model, x = _saturated(gain=40000.0)  # logit gaps of thousands: p_k = 0 even in float64
    cap = capture(ViTAdapter(model), x)
    settings = MapSettings(method="relevance", target="probability")
    raw = compute_map(cap, settings=settings, rescale=False)
    assert not np.any(raw)
    flags = degenerate_flags(raw, settings, cap)
    assert len(flags) == 1 and flags[0].startswith("all-zero map")
    assert "logit target" in flags[0]
    # The logit target still explains the same model.
    logit = MapSettings(method="relevance")
    raw_logit = compute_map(cap, settings=logit, rescale=False)
    assert np.any(raw_logit) and degenerate_flags(raw_logit, logit, cap) == []


def test_constant_and_non_finite_maps_are_flagged():
    model, x = _saturated(gain=1.0)
    cap = capture(ViTAdapter(model), x)
    s = MapSettings(method="rollout")
    assert "constant map" in degenerate_flags(np.full((4, 4), 0.25, np.float32), s, cap)[0]
    bad = np.ones((4, 4), np.float32)
    bad[1, 2] = np.nan
    assert "non-finite" in degenerate_flags(bad, s, cap)[0]
    assert degenerate_flags(compute_map(cap, settings=s, rescale=False), s, cap) == []


def test_an_unknown_target_is_refused():
    with pytest.raises(ValueError, match="gradient target"):
        MapSettings(target="softmax")
