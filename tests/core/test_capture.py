"""Capture once: logits, attention, gradients on demand and cached, batching, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inspector.core.capture import (
    AttentionModel,
    Capture,
    CaptureError,
    ViTAdapter,
    capture,
    capture_batch,
    compute_gradients,
)
from inspector.core.config import ViTConfig
from inspector.core.model import ModelOutput, VisionTransformer
from inspector.core.saliency import MapSettings, compute_map


def tiny_model(seed=0, **changes) -> VisionTransformer:
    torch.manual_seed(seed)
    cfg = ViTConfig(
        image_size=16, patch_size=4, hidden_size=16, depth=3, num_heads=2, num_classes=5, **changes
    )
    return VisionTransformer(cfg).eval()


class CountingAdapter:
    """Wraps a real adapter and counts model calls (the thing under test is the cache)."""

    def __init__(self, inner: ViTAdapter) -> None:
        self.inner = inner
        self.calls = 0
        self.num_prefix_tokens = inner.num_prefix_tokens
        self.grid_size = inner.grid_size
        self.residual = inner.residual

    def forward_with_attention(self, x: torch.Tensor) -> ModelOutput:
        self.calls += 1
        return self.inner.forward_with_attention(x)


@pytest.fixture()
def model():
    return tiny_model()


@pytest.fixture()
def x():
    return torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))


def test_capture_records_logits_probabilities_and_every_layer(model, x):
    cap = capture(ViTAdapter(model), x)
    with torch.no_grad():
        logits = model(x)[0]  # the fast SDPA path, a second implementation of the forward
        out = model.forward_with_attention(x)
    assert isinstance(cap, Capture)
    assert cap.attentions.shape == (3, 2, 17, 17) and cap.attentions.dtype == torch.float32
    assert cap.attentions.device.type == "cpu"
    torch.testing.assert_close(cap.logits, logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cap.attentions, torch.stack([a[0] for a in out.attentions]))
    torch.testing.assert_close(cap.probabilities, logits.double().softmax(-1).float())
    assert cap.probabilities.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert cap.predicted_class == int(logits.argmax())
    torch.testing.assert_close(cap.attentions.sum(-1), torch.ones(3, 2, 17))
    assert cap.num_prefix_tokens == 1 and cap.grid_size == (4, 4) and cap.residual is True
    assert (cap.num_layers, cap.num_heads, cap.num_tokens, cap.num_classes) == (3, 2, 17, 5)


def test_top_k(model, x):
    cap = capture(model, x)
    top = cap.top_k(3)
    order = np.argsort(-cap.probabilities.numpy(), kind="stable")
    assert [c for c, _ in top] == order[:3].tolist()
    assert [p for _, p in top] == pytest.approx(cap.probabilities[order[:3]].tolist())
    assert top[0][0] == cap.predicted_class
    assert len(cap.top_k(50)) == 5  # more than there are classes: all of them


def test_gradients_match_explicit_autograd_for_each_class(model, x):
    cap = capture(model, x)
    for c in range(5):
        out = model.forward_with_attention(x)
        want = torch.autograd.grad(out.logits[0, c], out.attentions)
        got = cap.gradients(c)
        assert got.shape == (3, 2, 17, 17) and got.dtype == torch.float32
        torch.testing.assert_close(got, torch.stack([g[0] for g in want]), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(cap.gradients(None), cap.gradients(cap.predicted_class))


def test_gradients_are_computed_once_per_class(model, x):
    adapter = CountingAdapter(ViTAdapter(model))
    assert isinstance(adapter, AttentionModel)
    cap = capture(adapter, x)
    assert adapter.calls == 1
    g1 = cap.gradients(2)
    assert adapter.calls == 2
    g2 = cap.gradients(2)
    assert adapter.calls == 2 and g2 is g1
    cap.gradients(4)
    assert adapter.calls == 3
    assert cap.has_gradients(2) and cap.has_gradients(4) and not cap.has_gradients(0)
    # every map of every method for those classes, at any setting, needs no further model call
    for method in ("rollout", "attention", "cls-attention", "grad-rollout", "relevance"):
        for ratio in (0.0, 0.9):
            for c in (2, 4):
                compute_map(cap, method, MapSettings(discard_ratio=ratio, class_index=c))
    assert adapter.calls == 3
    # the cached gradient equals a fresh recomputation
    fresh = capture(ViTAdapter(model), x)
    torch.testing.assert_close(fresh.gradients(2), g1)


def test_capture_batch_matches_single_captures(model):
    xs = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    caps = capture_batch(model, xs)
    assert len(caps) == 4
    for i, cap in enumerate(caps):
        single = capture(model, xs[i])  # (C, H, W) is accepted too
        torch.testing.assert_close(cap.attentions, single.attentions, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(cap.logits, single.logits, rtol=1e-5, atol=1e-5)
        assert cap.predicted_class == single.predicted_class


def test_batched_gradients_match_per_image_gradients(model):
    xs = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    adapter = CountingAdapter(ViTAdapter(model))
    caps = capture_batch(adapter, xs)
    classes = [0, None, 3]
    grads = compute_gradients(caps, classes, batch_size=2)
    assert adapter.calls == 1 + 2  # one capture pass, two backward batches
    for i, cap in enumerate(caps):
        c = cap.resolve_class(classes[i])
        assert cap.has_gradients(c)
        out = model.forward_with_attention(xs[i : i + 1])
        want = torch.stack([g[0] for g in torch.autograd.grad(out.logits[0, c], out.attentions)])
        torch.testing.assert_close(grads[i], want, rtol=1e-4, atol=1e-7)
    compute_gradients(caps, classes)  # all cached: no model call
    assert adapter.calls == 3


def test_capture_leaves_training_mode_and_frozen_parameters_alone(x):
    model = tiny_model(dropout=0.5, attn_dropout=0.5).train()
    for p in model.parameters():
        p.requires_grad_(False)
    a = capture(model, x)
    b = capture(model, x)
    assert model.training  # restored
    torch.testing.assert_close(a.attentions, b.attentions)  # dropout was off during capture
    g = a.gradients(1)  # frozen weights: the input still carries the graph
    assert g.abs().sum() > 0
    assert model.training


def test_model_that_outputs_probabilities_is_not_softmaxed_twice(x):
    model = tiny_model(output_softmax=True)
    cap = capture(model, x)
    torch.testing.assert_close(cap.probabilities, cap.logits)
    assert cap.probabilities.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_distillation_token_model():
    model = tiny_model(distill_token=True)
    cap = capture(model, torch.randn(1, 3, 16, 16))
    assert cap.num_prefix_tokens == 2 and cap.num_tokens == 18
    for method in ("rollout", "relevance", "cls-attention"):
        m = compute_map(cap, method)
        assert m.shape == (4, 4) and np.all(np.isfinite(m))


def test_bad_inputs_raise_capture_errors(model, x):
    with pytest.raises(CaptureError, match="capture_batch"):
        capture(model, torch.randn(2, 3, 16, 16))
    with pytest.raises(CaptureError, match=r"\(C, H, W\) or \(B, C, H, W\)"):
        capture(model, torch.randn(16, 16))
    with pytest.raises(CaptureError, match="float"):
        capture(model, torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(CaptureError, match="not an AttentionModel"):
        capture(torch.nn.Linear(3, 3), x)
    cap = capture(model, x)
    with pytest.raises(CaptureError, match="out of range.*5 classes"):
        cap.gradients(5)
    with pytest.raises(ValueError, match="16x16"):
        capture(model, torch.randn(1, 3, 8, 8))


def test_adapter_with_wrong_attention_shape_is_reported(model, x):
    broken = CountingAdapter(ViTAdapter(model))
    broken.grid_size = (3, 3)  # claims 9 patches; the model has 16
    with pytest.raises(CaptureError, match="expected \\(1, heads, 10, 10\\)"):
        capture(broken, x)
