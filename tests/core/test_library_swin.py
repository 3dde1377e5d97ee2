"""Swin: window attention of a query patch per stage, last-stage relevance, rollout refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

timm = pytest.importorskip("timm")

from inspector.core.capture import capture  # noqa: E402
from inspector.core.library import LibraryError  # noqa: E402
from inspector.core.library.swin import (  # noqa: E402
    SwinAdapter,
    last_stage_relevance,
    window_attention_map,
    window_token_index,
)


@pytest.fixture(scope="module")
def swin():
    torch.manual_seed(0)
    m = timm.create_model(
        "swin_tiny_patch4_window7_224",
        pretrained=False,
        depths=(2, 2, 2, 2),
        embed_dim=24,
        num_heads=(3, 3, 3, 3),
        num_classes=4,
    )
    adapter = SwinAdapter(m, image_size=224)
    cap = capture(adapter, torch.randn(1, 3, 224, 224))
    return adapter, cap


def test_window_index_matches_a_hand_built_shifted_partition():
    # 4x4 grid, 2x2 windows, shift 1: the first window holds patches (1,1),(1,2),(2,1),(2,2).
    idx = window_token_index((4, 4), (2, 2), (1, 1))
    assert idx.shape == (4, 4)
    assert idx[0].tolist() == [5, 6, 9, 10]
    assert sorted(idx.reshape(-1).tolist()) == list(range(16))  # every patch exactly once
    assert idx[3].tolist() == [15, 12, 3, 0]  # the wrapped-around corner window


@pytest.mark.parametrize("stage,block", [(0, 0), (0, 1), (2, 1), (3, 1)])
def test_window_attention_is_the_query_row_within_its_window(swin, stage, block):
    adapter, cap = swin
    with torch.no_grad():
        adapter.forward_with_attention(cap.input)
    windows = adapter.last_extras["windows"]
    H, W = adapter.stage_grids[stage]
    q = (H // 2, W // 3)
    m = window_attention_map(adapter, windows, stage=stage, block=block, query=q)
    assert m.shape == (H, W)
    assert np.isclose(m.sum(), 1.0, atol=1e-5)  # a probability row over its window only
    window, _ = adapter.window_geometry(stage, block)
    assert (m > 0).sum() <= window[0] * window[1]
    index = window_token_index((H, W), *adapter.window_geometry(stage, block))
    member = index[np.argwhere(index == q[0] * W + q[1])[0][0]]
    outside = np.ones(H * W, bool)
    outside[member] = False
    assert np.all(m.reshape(-1)[outside] == 0)


def test_last_stage_capture_and_relevance(swin):
    adapter, cap = swin
    assert cap.num_prefix_tokens == 0 and cap.grid_size == (7, 7)
    assert torch.allclose(cap.attentions.sum(-1), torch.ones(1), atol=1e-5)
    rel = last_stage_relevance(cap.attentions.numpy(), cap.gradients().numpy(), cap.grid_size)
    # Reference: the same rule written as one expression per layer, float64.
    a, g = cap.attentions.double().numpy(), cap.gradients().double().numpy()
    R = np.eye(49)
    for layer in range(a.shape[0]):
        R = R + np.maximum(a[layer] * g[layer], 0).mean(0) @ R
    ref = (R - np.eye(49)).mean(0).reshape(7, 7)
    np.testing.assert_allclose(rel, ref / ref.max(), rtol=1e-5, atol=1e-7)


def test_rollout_refuses_with_the_reason(swin):
    adapter, _ = swin
    with pytest.raises(LibraryError, match="windowed .* patch merging"):
        adapter.rollout()
