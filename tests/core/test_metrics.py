"""Localisation metrics on hand-made maps and masks with answers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from inspector.core.metrics import (
    MetricError,
    average_precision,
    localisation_metrics,
    minmax_scale,
    pointing_game,
    relevance_mass,
    relevance_rank_accuracy,
    segmentation_scores,
    smm,
    upsample_bilinear,
)

# A 4x4 map with values 0..15 in row-major order, and a mask of the two left columns.
MAP = np.arange(16, dtype=float).reshape(4, 4)
LEFT = np.zeros((4, 4), bool)
LEFT[:, :2] = True  # pixels 0, 1, 4, 5, 8, 9, 12, 13


def test_smm_hand_computed_4x4():
    # Scaled map v / 15 > 0.3  <=>  v >= 5: 11 pixels. S ∩ M = {5, 8, 9, 12, 13} = 5 pixels.
    # |S ∪ M| = 11 + 8 - 5 = 14.
    assert smm(MAP, LEFT, 0.3) == pytest.approx(5 / 14)
    # Threshold 0.5: v / 15 > 0.5 <=> v >= 8: rows 2-3, S ∩ M = 4, union 12.
    assert smm(MAP, LEFT, 0.5) == pytest.approx(4 / 12)
    # Scale and offset do not matter (min-max scaling).
    assert smm(3.0 * MAP - 7.0, LEFT, 0.3) == pytest.approx(5 / 14)


def test_smm_threshold_is_strict():
    sal = np.array([[0.0, 0.5, 1.0]])
    top = np.array([[False, False, True]])
    assert smm(sal, top, 0.5) == 1.0  # the 0.5 pixel is not "above" 0.5
    assert smm(sal, top, 0.49) == pytest.approx(1 / 2)


def test_smm_upsamples_grid_bilinearly_with_aligned_centres():
    # A 2x2 grid [[1,0],[0,0]] at 4x4 (align_corners=False): rows/cols weights 1, .75, .25, 0,
    # so the map is the outer product of (1, .75, .25, 0): values > 0.3 are the top-left 2x2
    # block (1, .75, .75, .5625). (With align_corners=True, 1 * 1/3 would also pass.)
    grid = np.array([[1.0, 0.0], [0.0, 0.0]])
    w = np.array([1.0, 0.75, 0.25, 0.0])
    np.testing.assert_allclose(upsample_bilinear(grid, (4, 4)), np.outer(w, w), atol=1e-12)
    block = np.zeros((4, 4), bool)
    block[:2, :2] = True
    top_row = np.zeros((4, 4), bool)
    top_row[0] = True
    assert smm(grid, block) == 1.0
    assert smm(grid, top_row) == pytest.approx(2 / 6)


def _bilinear_reference(grid: np.ndarray, H: int, W: int) -> np.ndarray:
    """Explicit float64 bilinear resampling with pixel-centre alignment, clamped at borders."""
    h, w = grid.shape

    def axis(n_out, n_in):
        c = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        i0 = np.floor(c).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, c - i0

    y0, y1, fy = axis(H, h)
    x0, x1, fx = axis(W, w)
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x1] * fx
    bottom = grid[y1][:, x0] * (1 - fx) + grid[y1][:, x1] * fx
    return top * (1 - fy[:, None]) + bottom * fy[:, None]


def test_upsample_matches_explicit_reference_and_smm_follows():
    rng = np.random.default_rng(1)
    grid = rng.random((8, 8))
    mask = np.zeros((64, 48), bool)
    mask[10:40, 5:30] = True
    ref = _bilinear_reference(grid, 64, 48)
    np.testing.assert_allclose(upsample_bilinear(grid, (64, 48)), ref, atol=1e-12)
    sel = (ref - ref.min()) / (ref.max() - ref.min()) > 0.3
    assert smm(grid, mask) == pytest.approx((sel & mask).sum() / (sel | mask).sum())
    assert upsample_bilinear(grid, (8, 8)) is not None  # same size: unchanged
    np.testing.assert_array_equal(upsample_bilinear(grid, (8, 8)), grid)


def test_other_scores_hand_computed_4x4():
    assert pointing_game(MAP, LEFT) is False  # max at pixel 15, right column
    assert pointing_game(MAP, ~LEFT) is True
    # Relevance mass: (0+1+4+5+8+9+12+13) / (0+...+15) = 52 / 120.
    assert relevance_mass(MAP, LEFT) == pytest.approx(52 / 120)
    # Rank accuracy: K = 8, top-8 = values 8..15, inside the left columns: 8, 9, 12, 13.
    assert relevance_rank_accuracy(MAP, LEFT) == pytest.approx(4 / 8)


def test_segmentation_scores_hand_computed_4x4():
    # s = v / 15, mean 0.5 -> object = v > 7.5 = rows 2-3. Mask: left columns.
    # Agreement: {8, 9, 12, 13} object and {2, 3, 6, 7} background -> 8 / 16.
    # IoU object = 4 / 12, IoU background = 4 / 12.
    # AP object: positives ranked (descending v) at 3, 4, 7, 8, 11, 12, 15, 16; AP is the mean of
    # the precisions there. Background with 1 - s gives the same ranks.
    ranks = np.array([3, 4, 7, 8, 11, 12, 15, 16])
    ap = float(np.mean(np.arange(1, 9) / ranks))
    got = segmentation_scores(MAP, LEFT)
    assert got["pixel_accuracy"] == pytest.approx(0.5)
    assert got["iou_object"] == pytest.approx(1 / 3)
    assert got["iou_background"] == pytest.approx(1 / 3)
    assert got["miou"] == pytest.approx(1 / 3)
    assert got["ap_object"] == pytest.approx(ap)
    assert got["ap_background"] == pytest.approx(ap)
    # mAP pools the two one-hot channels (Chefer et al.'s get_ap_scores): one AP over 32
    # entries. 1 - v / 15 is not exactly (15 - v) / 15 in floating point, so the pooled ties
    # are not the class ties; the reference is sklearn on the same pooled vectors.
    s = MAP.ravel() / 15.0
    pooled = average_precision_score(
        np.r_[~LEFT.ravel(), LEFT.ravel()].astype(int), np.r_[1.0 - s, s]
    )
    assert got["map"] == pytest.approx(pooled, abs=1e-12)


def test_segmentation_map_pools_the_two_channels_hand_computed():
    # s = [0, .25, .5, 1] (exact in binary), mask [F, T, F, T]. Pooled entries, by score:
    # 1: fg p3 (+), bg p0 (+) | .75: bg p1 (-) | .5: fg p2 (-), bg p2 (+) | .25: fg p1 (+) | 0: -.
    # Precision / recall at the thresholds: 1 -> (1, 2/4); .5 -> (3/5, 3/4); .25 -> (4/6, 1).
    # AP = 1/2 * 1 + 1/4 * 3/5 + 1/4 * 4/6 = 49/60, while each class alone has AP 5/6.
    sal = np.array([[0.0, 0.25, 0.5, 1.0]])
    mask = np.array([[False, True, False, True]])
    got = segmentation_scores(sal, mask)
    assert got["map"] == pytest.approx(49 / 60, abs=1e-12)
    assert got["ap_object"] == pytest.approx(5 / 6, abs=1e-12)
    assert got["ap_background"] == pytest.approx(5 / 6, abs=1e-12)


def test_empty_mask():
    empty = np.zeros((4, 4), bool)
    # No object: SMM is undefined whatever the map selects (issue 13: it was 0.0).
    assert smm(MAP, empty) is None
    assert smm(np.ones((4, 4)), empty) is None
    m = localisation_metrics(MAP, empty)
    assert m["pointing_game"] is None
    assert m["relevance_mass"] is None
    assert m["relevance_rank_accuracy"] is None
    assert m["ap_object"] is None
    assert m["iou_object"] == 0.0  # rows 2-3 predicted, nothing true
    assert m["mask_fraction"] == 0.0
    # Pooled over both channels, mAP stays defined: the background channel holds every positive.
    up = MAP.ravel() / 15.0
    assert m["map"] == pytest.approx(
        average_precision_score(np.r_[np.ones(16), np.zeros(16)], np.r_[1.0 - up, up])
    )


def test_full_mask():
    full = np.ones((4, 4), bool)
    m = localisation_metrics(MAP, full)
    assert m["smm"] == pytest.approx(11 / 16)  # |S| / |M|
    assert m["pointing_game"] is True
    assert m["relevance_mass"] == 1.0
    assert m["relevance_rank_accuracy"] == 1.0
    assert m["ap_background"] is None
    # Rows 0-1 are predicted background but no pixel is truly background: IoU 0 / 8.
    assert m["iou_background"] == 0.0
    assert m["iou_object"] == pytest.approx(8 / 16)
    assert m["miou"] == pytest.approx(0.25)
    up = MAP.ravel() / 15.0
    assert m["map"] == pytest.approx(
        average_precision_score(np.r_[np.zeros(16), np.ones(16)], np.r_[1.0 - up, up])
    )


def test_constant_map():
    const = np.full((2, 2), 0.7)
    m = localisation_metrics(const, LEFT)
    assert m["smm"] == 0.0  # scaled to zeros: nothing selected, union = M
    assert m["pointing_game"] is None  # a constant map points nowhere
    assert m["relevance_mass"] == pytest.approx(0.5)  # |M| / N for a uniform map
    assert m["relevance_rank_accuracy"] == pytest.approx(0.5)  # chance level |M| / N
    assert m["pixel_accuracy"] == pytest.approx(0.5)  # all predicted background
    assert m["iou_object"] == 0.0
    assert np.all(minmax_scale(const) == 0.0)
    assert relevance_mass(np.zeros((4, 4)), LEFT) is None  # no positive mass


def test_ties():
    sal = np.array([[2.0, 1.0], [1.0, 0.0]])
    mask = np.array([[False, True], [False, True]])
    # Pointing game: two maxima, one inside -> hit.
    corner = np.array([[False, False], [False, True]])
    assert pointing_game(np.array([[1.0, 0.0], [0.0, 1.0]]), corner) is True
    # Rank accuracy: K = 2; pixel 0 (outside) is above; one slot shared by the two 1.0 pixels,
    # one of which is inside -> (0 + 1 * 1/2) / 2.
    assert relevance_rank_accuracy(sal, mask) == pytest.approx(0.25)


def test_localisation_metrics_consistent_and_bounded_on_random_maps():
    rng = np.random.default_rng(2)
    for _ in range(5):
        grid = rng.normal(size=(8, 8))
        mask = np.zeros((32, 32), bool)
        y, x = rng.integers(0, 20, 2)
        mask[y : y + 12, x : x + 10] = True
        m = localisation_metrics(grid, mask, threshold=0.4)
        assert m["smm"] == smm(grid, mask, 0.4)
        assert m["relevance_mass"] == relevance_mass(grid, mask)
        for key in (
            "smm",
            "relevance_mass",
            "relevance_rank_accuracy",
            "pixel_accuracy",
            "miou",
            "map",
        ):
            assert 0.0 <= m[key] <= 1.0, key
        assert m["mask_fraction"] == pytest.approx(120 / 1024)
        # The segmentation APs against sklearn on the scaled, upsampled map.
        up = minmax_scale(upsample_bilinear(grid, mask.shape)).ravel()
        assert m["ap_object"] == pytest.approx(average_precision_score(mask.ravel(), up))
        assert m["ap_background"] == pytest.approx(average_precision_score(~mask.ravel(), 1.0 - up))


def test_bad_input():
    with pytest.raises(MetricError, match="NaN"):
        smm(np.array([[np.nan, 1.0]]), np.ones((1, 2), bool))
    with pytest.raises(MetricError, match="2-D"):
        smm(MAP, np.ones((1, 4, 4), bool))
    with pytest.raises(MetricError, match="threshold"):
        smm(MAP, LEFT, 1.5)
    with pytest.raises(MetricError, match="boolean"):
        smm(MAP, np.full((4, 4), 3))


def test_average_precision_matches_sklearn_with_and_without_ties():
    rng = np.random.default_rng(4)
    for quantise in (None, 4, 1):
        y = rng.random(300) < 0.3
        score = rng.random(300) + 0.5 * y
        if quantise:
            score = np.round(score * quantise) / quantise  # many ties
        assert average_precision(y, score) == pytest.approx(
            average_precision_score(y, score), abs=1e-12
        )
    assert average_precision(np.zeros(5, bool), np.arange(5.0)) is None
    assert average_precision(np.ones(5, bool), np.arange(5.0)) == 1.0
