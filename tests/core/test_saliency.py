"""Saliency methods against independent float64 references, hand-built cases and invariants."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.core import saliency as S
from inspector.core.capture import ViTAdapter, capture
from inspector.core.config import ViTConfig
from inspector.core.model import VisionTransformer
from inspector.core.saliency._common import _discard_flat


def random_attention(L=3, h=4, side=4, prefix=1, seed=0, temperature=2.0) -> torch.Tensor:
    """Row-stochastic attention ``[L, h, T, T]`` float32 with a spread of magnitudes."""
    g = torch.Generator().manual_seed(seed)
    T = prefix + side * side
    logits = torch.randn(L, h, T, T, generator=g, dtype=torch.float64) * temperature
    return logits.softmax(-1).float()


# ----------------------------------------------------------------------------------------------
# Independent float64 references: plain loops, full matrix products, explicit sort for discard
# ----------------------------------------------------------------------------------------------
def ref_fuse(A: np.ndarray, fusion: str) -> np.ndarray:  # A (h, T, T) float64
    out = np.empty(A.shape[1:])
    for i in range(A.shape[1]):
        for j in range(A.shape[2]):
            vals = [A[k, i, j] for k in range(A.shape[0])]
            out[i, j] = {"mean": sum(vals) / len(vals), "max": max(vals), "min": min(vals)}[fusion]
    return out


def ref_discard(F: np.ndarray, ratio: float) -> np.ndarray:
    flat = F.flatten().copy()
    k = int(flat.size * ratio)
    lowest = np.argsort(flat, kind="stable")[:k]  # full sort; ties in index order
    lowest = lowest[lowest != 0]
    flat[lowest] = 0.0
    return flat.reshape(F.shape)


def ref_layer_matrix(F: np.ndarray, ratio: float, residual: bool, legacy: bool) -> np.ndarray:
    T = F.shape[0]
    a = ref_discard(F, ratio)
    if residual:
        a = (a + np.eye(T)) / 2
    out = np.empty_like(a)
    row_sums = [sum(a[i, :]) for i in range(T)]
    for i in range(T):
        for j in range(T):
            # legacy: vit-explain divides entry (i, j) by the sum of row j. A row emptied by
            # the discard (possible without the identity) is defined to stay zero.
            s = row_sums[j] if legacy else row_sums[i]
            out[i, j] = a[i, j] / s if s > 0 else 0.0
    return out


def ref_rollout(
    attn, fusion="mean", ratio=0.0, residual=True, start=0, legacy=False, query=0, prefix=1
):
    A = np.asarray(attn, dtype=np.float64)
    T = A.shape[-1]
    R = np.eye(T)
    for l in range(start, A.shape[0]):
        R = ref_layer_matrix(ref_fuse(A[l], fusion), ratio, residual, legacy) @ R
    m = R[query, prefix:]
    side = int(round(np.sqrt(m.size)))
    return (m / m.max()).reshape(side, side)


def ref_grad_rollout(attn, grads, ratio=0.0, residual=True, legacy=False, prefix=1):
    A = np.asarray(attn, dtype=np.float64)
    G = np.asarray(grads, dtype=np.float64)
    T = A.shape[-1]
    R = np.eye(T)
    for l in range(A.shape[0]):
        fused = np.maximum(ref_fuse(A[l] * G[l], "mean"), 0.0)
        R = ref_layer_matrix(fused, ratio, residual, legacy) @ R
    m = R[0, prefix:]
    side = int(round(np.sqrt(m.size)))
    return (m / m.max()).reshape(side, side)


def ref_relevance(attn, grads, prefix=1):
    A = np.asarray(attn, dtype=np.float64)
    G = np.asarray(grads, dtype=np.float64)
    T = A.shape[-1]
    R = np.eye(T)
    for l in range(A.shape[0]):
        cam = np.zeros((T, T))
        for h in range(A.shape[1]):
            cam += np.maximum(G[l, h] * A[l, h], 0.0)
        cam /= A.shape[1]
        R = R + cam @ R
    m = R[0, prefix:]
    side = int(round(np.sqrt(m.size)))
    return (m / m.max()).reshape(side, side)


def vit_explain_rollout(attentions: list[torch.Tensor], discard_ratio: float, head_fusion: str):
    """jacobgil/vit-explain's ``rollout`` (vit_rollout.py), ported line by line, bug included."""
    result = torch.eye(attentions[0].size(-1), dtype=torch.float64)
    with torch.no_grad():
        for attention in attentions:
            if head_fusion == "mean":
                attention_heads_fused = attention.mean(axis=1)
            elif head_fusion == "max":
                attention_heads_fused = attention.max(axis=1)[0]
            else:
                attention_heads_fused = attention.min(axis=1)[0]
            flat = attention_heads_fused.view(attention_heads_fused.size(0), -1)
            _, indices = flat.topk(int(flat.size(-1) * discard_ratio), -1, False)
            indices = indices[indices != 0]
            flat[0, indices] = 0
            I = torch.eye(attention_heads_fused.size(-1), dtype=torch.float64)
            a = (attention_heads_fused + 1.0 * I) / 2
            a = a / a.sum(dim=-1)
            result = torch.matmul(a, result)
    mask = result[0, 0, 1:]
    width = int(mask.size(-1) ** 0.5)
    mask = mask.reshape(width, width).numpy()
    return mask / np.max(mask)


def assert_map_close(got, want, rtol=1e-4, atol=1e-5):
    assert got.dtype == np.float32
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------------------------
# Rollout
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fusion", S.FUSIONS)
@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("residual", [True, False])
def test_rollout_matches_float64_reference(fusion, ratio, residual):
    attn = random_attention(seed=1)
    got = S.rollout(attn, fusion=fusion, discard_ratio=ratio, residual=residual)
    assert_map_close(got, ref_rollout(attn, fusion, ratio, residual))


def test_rollout_start_layer_query_and_prefix_tokens():
    attn = random_attention(L=4, h=2, side=3, prefix=2, seed=2)
    got = S.rollout(
        attn, fusion="min", discard_ratio=0.3, start_layer=2, query=1, num_prefix_tokens=2
    )
    assert_map_close(got, ref_rollout(attn, "min", 0.3, True, start=2, query=1, prefix=2))


def test_rollout_non_square_grid():
    attn = random_attention(L=2, h=2, side=4, seed=3)  # 16 patches, shown as 2 x 8
    got = S.rollout(attn, grid=(2, 8))
    assert got.shape == (2, 8)
    np.testing.assert_allclose(got.ravel(), ref_rollout(attn).ravel(), rtol=1e-4, atol=1e-5)
    with pytest.raises(S.SaliencyError, match="grid"):
        S.rollout(attn, grid=(3, 5))


def test_identity_attention_gives_flat_rollout():
    L, h, T = 3, 2, 17
    attn = torch.eye(T).expand(L, h, T, T).clone()
    # R = I, so the class token's row has nothing on the patches: a flat (all-zero) map.
    got = S.rollout(attn, discard_ratio=0.9)
    assert np.all(got == 0.0)
    # Uniform attention: every patch receives the same share, flat at 1 after rescaling.
    uniform = torch.full((L, h, T, T), 1.0 / T)
    np.testing.assert_allclose(S.rollout(uniform), np.ones((4, 4)), rtol=1e-6)


@pytest.mark.parametrize("method", ["rollout", "attention"])
def test_class_token_attending_one_patch_lights_it_up(method):
    L, h, side = 3, 2, 4
    T = 1 + side * side
    target = 1 + 2 * side + 3  # patch (2, 3)
    attn = torch.eye(T).expand(L, h, T, T).clone()
    attn[:, :, 0, :] = 0.0
    attn[:, :, 0, target] = 1.0
    if method == "rollout":
        got = S.rollout(attn, fusion="max", discard_ratio=0.5)
    else:
        got = S.attention_map(attn, layer=1, head=0)
    want = np.zeros((side, side), np.float32)
    want[2, 3] = 1.0
    np.testing.assert_allclose(got, want, atol=1e-7)


def test_rollout_layers_rows_sum_to_one_and_full_matrix_agrees():
    attn = random_attention(L=4, h=3, side=5, seed=4)
    mats = S.rollout_layers(attn, fusion="max", discard_ratio=0.9)
    np.testing.assert_allclose(mats.sum(-1), 1.0, rtol=1e-5)
    R = S.rollout_matrix(attn, fusion="max", discard_ratio=0.9)
    np.testing.assert_allclose(R.sum(-1), 1.0, rtol=1e-5)  # a product of row-stochastic matrices
    row = R[0, 1:] / R[0, 1:].max()
    np.testing.assert_allclose(
        S.rollout(attn, fusion="max", discard_ratio=0.9).ravel(), row, rtol=1e-4, atol=1e-6
    )


def test_discard_zero_changes_nothing():
    attn = random_attention(seed=5)
    fused = S.fuse_heads(attn, "mean")
    np.testing.assert_array_equal(S.discard_lowest(fused, 0.0), fused)
    np.testing.assert_array_equal(S.rollout(attn, discard_ratio=0.0), S.rollout(attn))
    # a ratio so small that int(T*T*r) == 0 discards nothing either
    np.testing.assert_array_equal(S.discard_lowest(fused, 1e-4), fused)


def test_discard_matches_sort_with_ties_and_spares_class_self_entry():
    rng = np.random.default_rng(0)
    fused = rng.integers(0, 4, size=(3, 9, 9)).astype(np.float32)  # many ties
    fused[:, 0, 0] = 0.0  # the class self entry is among the lowest: it must survive
    fused[1, 0, 0] = 0.0
    for ratio in (0.2, 0.5, 0.77):
        got = S.discard_lowest(fused, ratio)
        for l in range(3):
            np.testing.assert_array_equal(got[l], ref_discard(fused[l].astype(np.float64), ratio))
    # with distinct values exactly k (or k - 1 when [0, 0] is among them) entries are zeroed
    distinct = rng.permutation(81).reshape(1, 9, 9).astype(np.float32) + 1
    got = S.discard_lowest(distinct, 0.5)
    assert np.count_nonzero(got == 0) == int(81 * 0.5)
    distinct[0, 0, 0] = 0.5  # now the smallest entry of all
    got = S.discard_lowest(distinct, 0.5)
    assert got[0, 0, 0] == 0.5 and np.count_nonzero(got == 0) == int(81 * 0.5) - 1


def test_legacy_normalisation_reproduces_vit_explain():
    attn = random_attention(L=3, h=3, side=4, seed=6)  # not doubly stochastic
    per_layer = [a[None].double() for a in attn]  # vit-explain sees (1, h, T, T) per layer
    for fusion in S.FUSIONS:
        want = vit_explain_rollout([a.clone() for a in per_layer], 0.9, fusion)
        got = S.rollout(attn, fusion=fusion, discard_ratio=0.9, legacy_normalisation=True)
        assert_map_close(got, want)
        assert_map_close(got, ref_rollout(attn, fusion, 0.9, legacy=True))
        fixed = S.rollout(attn, fusion=fusion, discard_ratio=0.9)
        assert np.abs(fixed - got).max() > 1e-3  # the bug does change the map
    # With mean fusion and no discard the rows of (A + I) / 2 already sum to 1, so the bug is
    # invisible; after a discard (or max/min fusion) they do not, and legacy rows drift off 1.
    np.testing.assert_allclose(
        S.rollout(attn, legacy_normalisation=True), S.rollout(attn), rtol=1e-5
    )
    mats = S.rollout_layers(attn, discard_ratio=0.5, legacy_normalisation=True)
    assert not np.allclose(mats.sum(-1), 1.0, atol=1e-3)


def test_rollout_without_residual_stays_finite_when_rows_vanish():
    attn = random_attention(L=3, h=1, side=3, seed=7)
    got = S.rollout(attn, discard_ratio=0.95, residual=False)
    assert np.all(np.isfinite(got)) and got.min() >= 0 and got.max() <= 1


@settings(max_examples=40, deadline=None)
@given(
    L=st.integers(1, 4),
    h=st.integers(1, 4),
    side=st.integers(1, 5),
    fusion=st.sampled_from(S.FUSIONS),
    ratio=st.floats(0.0, 0.99),
    residual=st.booleans(),
    legacy=st.booleans(),
    seed=st.integers(0, 10_000),
    # Temperature >= 0.5: near-uniform attention makes exact ties, and which of several equal
    # entries a discard removes is arbitrary (the hand-built tie cases are tested above).
    temperature=st.floats(0.5, 20.0),
)
def test_rollout_properties(L, h, side, fusion, ratio, residual, legacy, seed, temperature):
    attn = random_attention(L, h, side, seed=seed, temperature=temperature)
    got = S.rollout(
        attn, fusion=fusion, discard_ratio=ratio, residual=residual, legacy_normalisation=legacy
    )
    assert got.shape == (side, side) and got.dtype == np.float32
    assert np.all(np.isfinite(got)) and got.min() >= 0.0 and got.max() <= 1.0 + 1e-6
    want = ref_rollout(attn, fusion, ratio, residual, legacy=legacy) if got.max() > 0 else None
    if want is not None and np.all(np.isfinite(want)):
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-4)
    if not legacy:
        mats = S.rollout_layers(attn, fusion=fusion, discard_ratio=ratio, residual=residual)
        sums = mats.sum(-1)
        assert np.all((np.abs(sums - 1) < 1e-4) | (sums == 0))


# ----------------------------------------------------------------------------------------------
# Raw attention and last-layer class-token attention
# ----------------------------------------------------------------------------------------------
def test_attention_map_raw_values_and_fusion():
    attn = random_attention(L=3, h=4, side=3, seed=8)
    A = attn.double().numpy()
    got = S.attention_map(attn, layer=1, head=2, query=4, rescale=False)
    np.testing.assert_allclose(got.ravel(), A[1, 2, 4, 1:], rtol=1e-6)
    for fusion in S.FUSIONS:
        got = S.attention_map(attn, layer=-1, fusion=fusion)
        row = ref_fuse(A[2], fusion)[0, 1:]
        np.testing.assert_allclose(got.ravel(), row / row.max(), rtol=1e-5)
    with pytest.raises(S.SaliencyError, match="head 4 is out of range"):
        S.attention_map(attn, head=4)
    with pytest.raises(S.SaliencyError, match="layer"):
        S.attention_map(attn, layer=3)


@pytest.mark.parametrize("aggregation", S.AGGREGATIONS)
def test_cls_attention_matches_reference(aggregation):
    attn = random_attention(L=2, h=3, side=4, seed=9)
    A = attn.double().numpy()
    s = A[-1, :, 0, 1:]  # (h, N)
    want = np.empty(s.shape[1])
    for n in range(s.shape[1]):
        vals = s[:, n]
        mean = vals.sum() / len(vals)
        std = np.sqrt(((vals - mean) ** 2).sum() / len(vals))
        want[n] = {"mean": mean, "max": vals.max(), "meanstd": mean / (std + 1e-6)}[aggregation]
    got = S.cls_attention(attn, aggregation=aggregation)
    np.testing.assert_allclose(got.ravel(), want / want.max(), rtol=1e-4)


def test_cls_attention_meanstd_favours_agreement():
    T = 1 + 4
    attn = torch.full((1, 2, T, T), 1.0 / T)
    # patch 0: both heads give 0.3 (agree); patch 1: 0.6 and 0.0 (same mean, disagree)
    attn[0, :, 0, :] = torch.tensor([[0.1, 0.3, 0.6, 0.0, 0.0], [0.4, 0.3, 0.0, 0.15, 0.15]])
    mean = S.cls_attention(attn, aggregation="mean")
    meanstd = S.cls_attention(attn, aggregation="meanstd")
    assert mean[0, 0] == pytest.approx(mean[0, 1])
    assert meanstd[0, 0] == 1.0 and meanstd[0, 1] < 1e-3


def test_unknown_choices_name_the_valid_ones():
    attn = random_attention()
    with pytest.raises(S.SaliencyError, match="mean, max, min"):
        S.rollout(attn, fusion="median")
    with pytest.raises(ValueError, match="meanstd"):
        S.cls_attention(attn, aggregation="sum")
    with pytest.raises(S.SaliencyError, match=r"\[0, 1\)"):
        S.rollout(attn, discard_ratio=1.0)
    with pytest.raises(S.SaliencyError, match="attention, rollout, grad-rollout"):
        S.MapSettings(method="gradcam")
    with pytest.raises(S.SaliencyError, match="layers, heads, T, T"):
        S.rollout(attn[0])


# ----------------------------------------------------------------------------------------------
# Gradient methods on a real (tiny) model, gradients from an explicit autograd call
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    cfg = ViTConfig(
        image_size=16, patch_size=4, hidden_size=16, depth=3, num_heads=4, num_classes=5
    )
    model = VisionTransformer(cfg).eval()
    x = torch.randn(1, 3, 16, 16)
    return model, x


def explicit_gradients(model, x, c):
    out = model.forward_with_attention(x)
    grads = torch.autograd.grad(out.logits[0, c], out.attentions)
    attn = torch.stack([a[0].detach() for a in out.attentions])
    return attn, torch.stack([g[0] for g in grads])


@pytest.mark.parametrize("legacy", [False, True])
def test_grad_rollout_against_explicit_autograd(tiny, legacy):
    model, x = tiny
    cap = capture(ViTAdapter(model), x)
    for c in (cap.predicted_class, (cap.predicted_class + 1) % 5):
        attn, grads = explicit_gradients(model, x, c)
        settings_ = S.MapSettings(
            method="grad-rollout", discard_ratio=0.5, class_index=c, legacy_normalisation=legacy
        )
        got = S.compute_map(cap, settings=settings_)
        assert_map_close(
            got, ref_grad_rollout(attn, grads, 0.5, legacy=legacy), rtol=1e-3, atol=1e-5
        )


def test_relevance_against_explicit_autograd(tiny):
    model, x = tiny
    cap = capture(ViTAdapter(model), x)
    for c in range(3):
        attn, grads = explicit_gradients(model, x, c)
        got = S.compute_map(cap, "relevance", S.MapSettings(class_index=c))
        assert_map_close(got, ref_relevance(attn, grads), rtol=1e-3, atol=1e-5)
        R = S.relevance_matrix(attn, grads)
        np.testing.assert_allclose(got.ravel(), R[0, 1:] / R[0, 1:].max(), rtol=1e-4, atol=1e-6)


def test_gradient_methods_on_random_tensors():
    attn = random_attention(L=3, h=2, side=4, seed=10)
    grads = torch.randn(attn.shape, generator=torch.Generator().manual_seed(1))
    assert_map_close(
        S.grad_rollout(attn, grads, discard_ratio=0.9),
        ref_grad_rollout(attn, grads, 0.9),
        rtol=1e-3,
    )
    assert_map_close(S.relevance(attn, grads), ref_relevance(attn, grads), rtol=1e-3)
    # each layer's gradient goes with its own layer: reversing the gradients changes the map
    reversed_grads = grads.flip(0)
    assert not np.allclose(S.grad_rollout(attn, reversed_grads), S.grad_rollout(attn, grads))
    with pytest.raises(S.SaliencyError, match="same shape"):
        S.relevance(attn, grads[:2])


# ----------------------------------------------------------------------------------------------
# Dispatcher and the cached path
# ----------------------------------------------------------------------------------------------
def test_compute_map_every_method_is_finite_and_in_unit_range(tiny):
    model, x = tiny
    cap = capture(model, x)
    for method in S.METHODS:
        m = S.compute_map(cap, method)
        assert m.shape == (4, 4) and m.dtype == np.float32
        assert np.all(np.isfinite(m)) and m.min() >= 0 and m.max() == pytest.approx(1.0)


def test_cached_path_matches_fresh_recomputation(tiny):
    model, x = tiny
    cap = capture(model, x)
    attn = cap.attentions
    for fusion in S.FUSIONS:
        for ratio in (0.0, 0.9, 0.3):  # the fused matrices are reused across ratios
            got = S.compute_map(cap, "rollout", S.MapSettings(fusion=fusion, discard_ratio=ratio))
            np.testing.assert_array_equal(got, S.rollout(attn, fusion=fusion, discard_ratio=ratio))
    # a brand-new capture (new forward pass) gives the same maps as the cached one
    fresh = capture(model, x)
    for method in S.METHODS:
        np.testing.assert_allclose(
            S.compute_map(fresh, method), S.compute_map(cap, method), rtol=1e-5, atol=1e-6
        )
    # asking again is served from the cache and is identical
    first = S.compute_map(cap, "grad-rollout")
    np.testing.assert_array_equal(S.compute_map(cap, "grad-rollout"), first)


def test_compute_map_residual_auto_follows_the_model():
    torch.manual_seed(1)
    cfg = ViTConfig(
        image_size=8,
        patch_size=4,
        hidden_size=8,
        depth=2,
        num_heads=2,
        num_classes=3,
        residual=False,
    )
    cap = capture(VisionTransformer(cfg), torch.randn(1, 3, 8, 8))
    assert cap.residual is False
    auto = S.compute_map(cap, "rollout", S.MapSettings(discard_ratio=0.0, fusion="mean"))
    np.testing.assert_allclose(
        auto, ref_rollout(cap.attentions, "mean", 0.0, residual=False), rtol=1e-4, atol=1e-6
    )
    forced = S.compute_map(
        cap, "rollout", S.MapSettings(discard_ratio=0.0, fusion="mean", residual=True)
    )
    np.testing.assert_allclose(
        forced, ref_rollout(cap.attentions, "mean", 0.0, residual=True), rtol=1e-4, atol=1e-6
    )


# ----------------------------------------------------------------------------------------------
# The slider path: thresholds from the memoised sorted rows
# ----------------------------------------------------------------------------------------------
def test_discard_with_sorted_rows_equals_the_stable_sort_reference():
    rng = np.random.default_rng(11)
    cases = [
        rng.integers(0, 4, size=(3, 9, 9)).astype(np.float32),  # many ties
        rng.random((2, 10, 10)).astype(np.float32),  # distinct values
        np.zeros((1, 5, 5), np.float32),
    ]  # everything tied
    cases[0][1, 0, 0] = 0.0  # the class self entry among the lowest: it must survive
    for fused in cases:
        L, T, _ = fused.shape
        flat = fused.reshape(L, T * T)
        sorted_rows = np.sort(flat, axis=-1)
        for ratio in (0.0, 0.01, 0.2, 0.5, 0.77, 0.99):
            got = _discard_flat(flat, ratio, sorted_rows).reshape(fused.shape)
            for l in range(L):
                np.testing.assert_array_equal(
                    got[l], ref_discard(fused[l].astype(np.float64), ratio)
                )
            # the selection path (no sorted rows) gives the same array
            np.testing.assert_array_equal(got, S.discard_lowest(fused, ratio))


def test_cached_gradient_rollout_over_many_ratios(tiny):
    # grad-rollout's fusion clamps negatives to 0, so many entries tie at 0: the memoised
    # sorted rows must pick the same entries as the selection, for every slider position.
    model, x = tiny
    cap = capture(ViTAdapter(model), x)
    c = cap.predicted_class
    attn, grads = explicit_gradients(model, x, c)
    fused = S.grad_fuse(attn, grads)
    assert np.count_nonzero(fused == 0) > fused.size // 10  # the tie-heavy case
    for ratio in (0.0, 0.3, 0.5, 0.9, 0.98):
        for legacy in (False, True):
            settings_ = S.MapSettings(
                method="grad-rollout", discard_ratio=ratio, legacy_normalisation=legacy
            )
            got = S.compute_map(cap, settings=settings_)
            np.testing.assert_array_equal(
                got,
                S.grad_rollout(
                    cap.attentions,
                    cap.gradients(c),
                    discard_ratio=ratio,
                    legacy_normalisation=legacy,
                ),
            )
            assert_map_close(
                got, ref_grad_rollout(attn, grads, ratio, legacy=legacy), rtol=1e-3, atol=1e-5
            )


def test_cached_rollout_start_layer_and_query(tiny):
    model, x = tiny
    cap = capture(model, x)
    attn = cap.attentions
    for start, query, ratio in ((1, 0, 0.9), (2, 5, 0.5), (0, 16, 0.95)):
        got = S.compute_map(
            cap,
            "rollout",
            S.MapSettings(fusion="min", discard_ratio=ratio, start_layer=start, query=query),
        )
        assert_map_close(
            got, ref_rollout(attn, "min", ratio, start=start, query=query), rtol=1e-4, atol=1e-6
        )
