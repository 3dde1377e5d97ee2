"""Deletion / insertion against a hand-built "model" with known curves; randomisation sanity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from inspector.core.config import ViTConfig
from inspector.core.metrics import MetricError
from inspector.core.metrics_faithfulness import (
    cascading_randomisation,
    deletion_insertion,
    randomisation_order,
)
from inspector.core.model import VisionTransformer


def _region_model(original: torch.Tensor, region: np.ndarray, calls: list | None = None):
    """A plain function, not a network: p(class 0) = share of ``region`` pixels left intact."""
    reg = torch.from_numpy(region)

    def predict(batch: torch.Tensor) -> torch.Tensor:
        if calls is not None:
            calls.append(batch.clone())
        intact = (batch == original[None]).all(dim=1)  # (B, H, W)
        p = intact[:, reg].double().mean(dim=1)  # (B,)
        return torch.stack([p, 1 - p], dim=1)  # (B, 2)

    return predict


def _setup(size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = 0.5 + torch.rand(3, size, size, generator=g)  # no zeros, blur changes every pixel
    region = np.zeros((size, size), bool)
    region[2:6, 1:5] = True  # 16 pixels
    return image, region


def _analytic(region_px: int, total: int) -> tuple[float, float]:
    """Deletion AUC when the region goes first: integral of max(0, 1 - x N / |R|) dx."""
    deletion = np.float64(region_px) / (2.0 * np.float64(total))
    return float(deletion), float(1.0 - deletion)


def test_region_first_gives_analytic_aucs():
    image, region = _setup()
    del_ref, ins_ref = _analytic(region.sum(), region.size)  # 0.125, 0.875
    for steps, sal in [(8, region.astype(float)), (64, region * (10 + np.random.rand(8, 8)))]:
        out = deletion_insertion(_region_model(image, region), image, sal, steps=steps)
        assert out["class_index"] == 0
        assert out["deletion_auc"] == pytest.approx(del_ref, abs=1e-12)
        assert out["insertion_auc"] == pytest.approx(ins_ref, abs=1e-12)
        assert out["deletion_curve"][0] == 1.0 and out["deletion_curve"][-1] == 0.0
        assert out["insertion_curve"][0] == 0.0 and out["insertion_curve"][-1] == 1.0
        assert out["fractions"][0] == 0.0 and out["fractions"][-1] == 1.0
        assert len(out["deletion_curve"]) == steps + 1
    # steps = 8 on 64 pixels: 8 pixels per step, the region is gone after two steps.
    out = deletion_insertion(_region_model(image, region), image, region.astype(float), steps=8)
    np.testing.assert_allclose(out["deletion_curve"], [1, 0.5] + [0] * 7)


def test_region_last_and_other_class():
    image, region = _setup()
    del_first, ins_first = _analytic(region.sum(), region.size)
    out = deletion_insertion(_region_model(image, region), image, (~region).astype(float), steps=16)
    assert out["deletion_auc"] == pytest.approx(1 - del_first, abs=1e-12)
    assert out["insertion_auc"] == pytest.approx(1 - ins_first, abs=1e-12)
    other = deletion_insertion(
        _region_model(image, region), image, region.astype(float), steps=8, class_index=1
    )
    assert other["deletion_auc"] == pytest.approx(1 - del_first, abs=1e-12)


def test_patch_grid_saliency_is_upsampled():
    # 2x2 grid lighting the top-left quadrant; bilinear upsampling keeps every quadrant pixel
    # above every other pixel (min inside .625^2 > max outside .375), so the quadrant goes first.
    image, _ = _setup()
    quadrant = np.zeros((8, 8), bool)
    quadrant[:4, :4] = True
    out = deletion_insertion(
        _region_model(image, quadrant), image, np.array([[1.0, 0.0], [0.0, 0.0]]), steps=8
    )
    assert out["deletion_auc"] == pytest.approx(_analytic(16, 64)[0], abs=1e-12)


def test_random_saliency_is_intermediate():
    image, _ = _setup(size=16)
    region = np.zeros((16, 16), bool)
    region[4:12, 4:12] = True
    rng = np.random.default_rng(3)
    out = deletion_insertion(_region_model(image, region), image, rng.random((16, 16)), steps=32)
    best_del, best_ins = _analytic(64, 256)  # 0.125, 0.875
    assert best_del + 0.15 < out["deletion_auc"] < 1 - best_del - 0.15
    assert best_del + 0.15 < out["insertion_auc"] < best_ins - 0.15


def test_batching_and_perturbed_inputs():
    image, region = _setup()
    sal = np.random.default_rng(0).random((8, 8))
    calls: list = []
    a = deletion_insertion(_region_model(image, region, calls), image, sal, steps=10, batch_size=3)
    b = deletion_insertion(_region_model(image, region), image, sal, steps=10, batch_size=100)
    np.testing.assert_array_equal(a["deletion_curve"], b["deletion_curve"])
    np.testing.assert_array_equal(a["insertion_curve"], b["insertion_curve"])
    # 1 call for the predicted class, then ceil(11 / 3) = 4 batches per curve.
    assert len(calls) == 1 + 4 + 4
    assert max(c.shape[0] for c in calls) == 3
    deletion = torch.cat(calls[1:5])
    insertion = torch.cat(calls[5:9])
    assert torch.equal(deletion[0], image)
    assert torch.count_nonzero(deletion[-1]) == 0  # fully deleted = zero input
    # The insertion starts from a per-channel Gaussian blur (sigma 5, reflect) of the image.
    ref = gaussian_filter(image.double().numpy(), sigma=(0, 5, 5), mode="reflect")
    np.testing.assert_allclose(insertion[0].numpy(), ref, atol=1e-6)
    assert torch.equal(insertion[-1], image)
    # Each deletion step removes pixels in saliency order: the most salient pixel goes first.
    first = np.unravel_index(np.argmax(sal), sal.shape)
    assert torch.all(deletion[1][:, first[0], first[1]] == 0)


def test_bad_inputs():
    image, region = _setup()
    predict = _region_model(image, region)
    with pytest.raises(MetricError, match="C, H, W"):
        deletion_insertion(predict, image[None], region.astype(float))
    with pytest.raises(MetricError, match="class_index"):
        deletion_insertion(predict, image, region.astype(float), class_index=5)
    with pytest.raises(MetricError, match="probabilities"):
        deletion_insertion(lambda b: b.mean(), image, region.astype(float))


# --- cascading randomisation -------------------------------------------------------------


def _last_layer_cls_attention(model: VisionTransformer, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        attn = model.forward_with_attention(x).attentions[-1]  # (1, nh, T, T)
    return attn[0, :, 0, 1:].mean(0).numpy()  # class token -> patches, mean over heads


def _tiny(**kw) -> VisionTransformer:
    torch.manual_seed(0)
    cfg = ViTConfig(
        image_size=16, patch_size=4, num_classes=3, hidden_size=16, depth=3, num_heads=2, **kw
    )
    return VisionTransformer(cfg).eval()


def test_cascading_randomisation_head_first_then_lower():
    model = _tiny()
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng_state = torch.random.get_rng_state()
    res = cascading_randomisation(model, x, _last_layer_cls_attention, seed=0)
    assert [r["layer_name"] for r in res] == [
        "head",
        "blocks.2",
        "blocks.1",
        "blocks.0",
        "embeddings",
    ]
    # The last layer's attention does not depend on the head.
    assert res[0]["spearman"] == pytest.approx(1.0, abs=1e-12)
    for r in res[1:]:
        assert r["spearman"] < 0.95, r
    # The original model and the global RNG are untouched; the result is reproducible.
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    again = cascading_randomisation(model, x, _last_layer_cls_attention, seed=0)
    assert [r["spearman"] for r in again] == [r["spearman"] for r in res]


def test_identical_and_constant_maps():
    model = _tiny()
    x = torch.zeros(1, 3, 16, 16)
    fixed = np.arange(10.0)[::-1]
    res = cascading_randomisation(model, x, lambda m, _x: fixed)
    assert all(r["spearman"] == pytest.approx(1.0, abs=1e-12) for r in res)
    flat = cascading_randomisation(model, x, lambda m, _x: np.ones(10))
    assert all(r["spearman"] is None for r in flat)


def test_randomisation_order_covers_every_parameter():
    model = _tiny(final_norm=True, pos_encoding="learned", distill_token=True)
    order = randomisation_order(model)
    assert [name for name, _, _ in order][:3] == ["head", "norm", "blocks.2"]
    covered = set()
    for _, modules, bare in order:
        for m in modules:
            covered |= {id(p) for p in m.parameters()}
        covered |= {id(getattr(model, n)) for n in bare}
    assert covered == {id(p) for p in model.parameters()}
