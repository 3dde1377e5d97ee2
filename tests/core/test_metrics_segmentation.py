"""Chefer et al.'s dataset-level segmentation scores and the tolerant pointing game: hand-built
cases with answers worked out by hand, and float64 recomputations with sklearn's AP."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from inspector.core.checkpoint import Checkpoint
from inspector.core.config import Preprocess, ViTConfig
from inspector.core.data import make_synthetic
from inspector.core.evaluation import evaluate_saliency
from inspector.core.explain import from_checkpoint
from inspector.core.metrics import (
    MetricError,
    localisation_metrics,
    pointing_game,
    pointing_tolerance,
)
from inspector.core.metrics_segmentation import SegmentationAccumulator
from inspector.core.model import VisionTransformer
from inspector.core.saliency import MapSettings


def test_accumulator_hand_computed_two_images():
    # Image A, 1 x 4: s = [0, .25, .5, 1], mean .4375 -> object {2, 3}; mask {1, 3}.
    #   object I = 1, U = 3; background (pred {0, 1}, true {0, 2}) I = 1, U = 3; 2 of 4 correct.
    #   pooled AP = 49 / 60 (tests/core/test_metrics.py works it out).
    # Image B, 2 x 4: top row 1, bottom row 0 -> object = top row; mask = top row + pixel 4.
    #   object I = 4, U = 5; background (pred {4..7}, true {5, 6, 7}) I = 3, U = 4; 7 of 8.
    #   pooled AP: score-1 group has 8 entries with 7 positives, score-0 group 8 with 1 of the
    #   8 positives: AP = 7/8 * 7/8 + 1/8 * 8/16 = 53/64.
    acc = SegmentationAccumulator()
    acc.add(np.array([[0.0, 0.25, 0.5, 1.0]]), np.array([[False, True, False, True]]))
    b_map = np.array([[1.0] * 4, [0.0] * 4])
    b_mask = np.array([[True] * 4, [True, False, False, False]])
    per_image_b = acc.add(b_map, b_mask)
    got = acc.result()
    assert got.images == 2
    assert got.pixel_accuracy == pytest.approx((2 + 7) / (4 + 8))
    assert got.iou_object == pytest.approx((1 + 4) / (3 + 5))
    assert got.iou_background == pytest.approx((1 + 3) / (3 + 4))
    assert got.miou == pytest.approx((5 / 8 + 4 / 7) / 2)
    assert got.map == pytest.approx((49 / 60 + 53 / 64) / 2)
    # Accumulated, not the mean of the per-image mIoU (1/3 and 31/40).
    assert per_image_b["miou"] == pytest.approx((4 / 5 + 3 / 4) / 2)
    assert got.miou != pytest.approx((1 / 3 + 31 / 40) / 2)
    assert got.to_dict()["miou"] == got.miou


def test_empty_accumulator_is_undefined():
    got = SegmentationAccumulator().result()
    assert got.images == 0
    assert got.pixel_accuracy is None and got.miou is None and got.map is None


def _reference(maps: list[np.ndarray], masks: list[np.ndarray]) -> dict:
    """Chefer et al.'s totals recomputed directly in float64, AP by sklearn."""
    inter, union, correct, pixels, aps = np.zeros(2), np.zeros(2), 0.0, 0.0, []
    for s, m in zip(maps, masks, strict=True):
        s = np.asarray(s, np.float64)
        span = s.max() - s.min()
        s = (s - s.min()) / span if span > 0 else np.zeros_like(s)
        obj = s > s.mean()
        for c, (p, t) in enumerate([(obj, m), (~obj, ~m)]):
            inter[c] += np.sum(p & t)
            union[c] += np.sum(p | t)
        correct += np.sum(obj == m)
        pixels += m.size
        labels = np.concatenate([(~m).ravel(), m.ravel()]).astype(int)  # one-hot [bg, fg]
        aps.append(average_precision_score(labels, np.concatenate([1 - s.ravel(), s.ravel()])))
    iou = inter / union
    return {"pixel_accuracy": correct / pixels, "miou": iou.mean(), "map": np.mean(aps)}


def test_accumulator_matches_float64_recomputation_on_generated_images():
    rng = np.random.default_rng(7)
    maps, masks = [], []
    acc = SegmentationAccumulator()
    for i in range(6):
        H, W = (32, 32) if i % 2 else (24, 40)  # two image sizes: sums weigh by pixels
        yy, xx = np.mgrid[:H, :W]
        cy, cx = rng.uniform(5, H - 5), rng.uniform(5, W - 5)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 60.0)
        s = blob + 0.3 * rng.random((H, W))
        m = np.zeros((H, W), bool)
        y, x = rng.integers(0, H // 2), rng.integers(0, W // 2)
        m[y : y + rng.integers(4, H // 2), x : x + rng.integers(4, W // 2)] = True
        maps.append(s)
        masks.append(m)
        acc.add(s.astype(np.float32), m)
    ref = _reference(maps, masks)
    got = acc.result().to_dict()
    for key in ("pixel_accuracy", "miou", "map"):
        assert got[key] == pytest.approx(ref[key], abs=1e-6), key


def _generated_pairs(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        H, W = (16, 16) if i % 3 else (12, 20)
        s = rng.random((H, W)).astype(np.float32)
        m = np.zeros((H, W), bool)
        m[rng.integers(0, H // 2) :, : rng.integers(2, W)] = True
        pairs.append((s, m))
    return pairs


def test_merged_shards_equal_one_pass_exactly():
    # evaluate --ray merges shard totals: counts and the AP sum must not depend on the split
    # or the order (an order-dependent float sum would differ in the last bits).
    pairs = _generated_pairs(13, seed=3)
    whole = SegmentationAccumulator()
    for s, m in pairs:
        whole.add(s, m)
    for cuts in ([5], [1, 7], [12]):
        shards, start = [], 0
        for stop in [*cuts, len(pairs)]:
            acc = SegmentationAccumulator()
            for s, m in pairs[start:stop]:
                acc.add(s, m)
            shards.append(acc)
            start = stop
        merged = SegmentationAccumulator()
        for acc in reversed(shards):  # any order
            merged.merge(acc)
        assert merged.result() == whole.result()
    ref = _reference([s for s, _ in pairs], [m for _, m in pairs])
    assert whole.result().map == pytest.approx(ref["map"], abs=1e-6)


def test_evaluate_reports_dataset_segmentation_per_method():
    torch.manual_seed(0)
    cfg = ViTConfig(
        image_size=32, patch_size=8, num_classes=10, hidden_size=32, depth=2, num_heads=2
    )
    ckpt = Checkpoint.from_model(
        VisionTransformer(cfg).eval(),
        class_names=[str(i) for i in range(10)],
        preprocess=Preprocess(image_size=32),
    )
    loaded = from_checkpoint(ckpt)
    data = make_synthetic(
        seed=3, image_size=32, train_per_class=1, val_per_class=1, test_per_class=1
    ).val
    methods = ["rollout", "cls-attention"]
    result = evaluate_saliency(loaded, data, methods, MapSettings(), batch_size=4)
    seg = result.summary["segmentation"]
    assert set(seg) == set(methods)
    rows = result.rows
    for method in methods:
        assert seg[method]["images"] == len(data)
        # Same-size images: the accumulated pixel accuracy is the mean of the per-image ones,
        # and mAP is the mean of the per-image pooled APs by definition.
        assert seg[method]["pixel_accuracy"] == pytest.approx(
            np.mean([r[f"{method}/pixel_accuracy"] for r in rows])
        )
        assert seg[method]["map"] == pytest.approx(np.mean([r[f"{method}/map"] for r in rows]))
        assert 0.0 <= seg[method]["miou"] <= 1.0
    assert "accumulated over the dataset" in result.summary_markdown()


# ---------------------------------------------------------------------------------------------
# Pointing game with a tolerance (Zhang et al. 2018)
# ---------------------------------------------------------------------------------------------
def _peak_at(shape, r, c):
    s = np.zeros(shape)
    s[r, c] = 1.0
    return s


def test_pointing_tolerance_hand_built_14_15_16_pixels():
    mask = np.zeros((64, 64), bool)
    mask[10, 10] = True
    for dc, hit in [(14, True), (15, True), (16, False)]:
        assert pointing_game(_peak_at(mask.shape, 10, 10 + dc), mask, tolerance=15) is hit, dc
    # Diagonal 3-4-5 triangles: distance 15 exactly (9, 12) hits, 15.6 (10, 12) does not.
    assert pointing_game(_peak_at(mask.shape, 19, 22), mask, tolerance=15) is True
    assert pointing_game(_peak_at(mask.shape, 20, 22), mask, tolerance=15) is False
    # Tolerance 0 is the strict game.
    assert pointing_game(_peak_at(mask.shape, 10, 11), mask, tolerance=0) is False
    assert pointing_game(_peak_at(mask.shape, 10, 10), mask, tolerance=0) is True


def test_pointing_default_is_15px_at_224_scaled():
    assert pointing_tolerance((224, 224)) == 15.0
    assert pointing_tolerance((64, 64)) == pytest.approx(15 * 64 / 224)  # 4.29 px
    big = np.zeros((224, 224), bool)
    big[100, 100] = True
    assert pointing_game(_peak_at(big.shape, 100, 115), big) is True
    assert pointing_game(_peak_at(big.shape, 100, 116), big) is False
    small = np.zeros((64, 64), bool)
    small[30, 30] = True
    assert pointing_game(_peak_at(small.shape, 30, 34), small) is True
    assert pointing_game(_peak_at(small.shape, 30, 35), small) is False
    m = localisation_metrics(_peak_at(small.shape, 30, 35), small, pointing_tolerance=5)
    assert m["pointing_game"] is True
    with pytest.raises(MetricError, match="tolerance"):
        pointing_game(_peak_at(small.shape, 0, 0), small, tolerance=-1)


def test_pointing_distance_matches_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(20):
        mask = rng.random((20, 24)) < 0.03
        mask[rng.integers(20), rng.integers(24)] = True
        peak = (int(rng.integers(20)), int(rng.integers(24)))
        ys, xs = np.nonzero(mask)
        d = np.sqrt((ys - peak[0]) ** 2 + (xs - peak[1]) ** 2).min()
        for tol in (0.0, 2.0, 3.5, 6.0):
            assert pointing_game(_peak_at(mask.shape, *peak), mask, tolerance=tol) is bool(
                d <= tol
            ), (peak, tol, d)


def test_pointing_ties_any_peak_within_tolerance():
    mask = np.zeros((32, 32), bool)
    mask[0, 0] = True
    s = np.zeros((32, 32))
    s[31, 31] = s[0, 3] = 1.0  # one far peak, one 3 px away
    assert pointing_game(s, mask, tolerance=3) is True
    assert pointing_game(s, mask, tolerance=2.9) is False
