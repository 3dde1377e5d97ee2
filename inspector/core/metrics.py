"""Localisation metrics: how well a saliency map agrees with a binary object mask.

Every function takes a saliency map on any grid (the ``(H/P, W/P)`` patch grid or an already
upsampled map) and a ``(H, W)`` bool mask. The map is first brought to the mask's size by
bilinear interpolation (:func:`upsample_bilinear`), so all scores are measured in image pixels.

Undefined values are returned as ``None``, never as a number that could be averaged by mistake:
SMM with an empty union, and the mask-based scores (pointing game, relevance mass, rank accuracy)
when the mask is empty. Aggregators should skip ``None`` and report how many were skipped.

Faithfulness (deletion / insertion) and the parameter-randomisation sanity check live in
:mod:`inspector.core.metrics_faithfulness`.
"""

from __future__ import annotations

import numpy as np
import torch

from .postprocess import is_constant, upsample

__all__ = [
    "MetricError",
    "upsample_bilinear",
    "is_constant",
    "minmax_scale",
    "smm",
    "POINTING_TOLERANCE_PX",
    "pointing_tolerance",
    "pointing_game",
    "relevance_mass",
    "relevance_rank_accuracy",
    "average_precision",
    "segmentation_scores",
    "localisation_metrics",
]


class MetricError(ValueError):
    """A saliency map or mask has the wrong shape, type or values."""


def _as_map(saliency) -> np.ndarray:
    """Any 2-D array-like or tensor -> float64 numpy ``(h, w)``; rejects NaN / inf."""
    if isinstance(saliency, torch.Tensor):
        saliency = saliency.detach().cpu().numpy()
    arr = np.asarray(saliency, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise MetricError(f"saliency must be a non-empty 2-D map (h, w), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise MetricError("saliency contains NaN or infinite values")
    return arr


def _as_mask(mask) -> np.ndarray:
    """A 2-D bool (or 0/1) array -> bool numpy ``(H, W)``."""
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    arr = np.asarray(mask)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise MetricError(f"mask must be a non-empty 2-D array (H, W), got shape {arr.shape}")
    if arr.dtype != bool:
        if not np.all((arr == 0) | (arr == 1)):
            raise MetricError("mask must be boolean (or hold only 0 and 1)")
        arr = arr.astype(bool)
    return arr


def upsample_bilinear(saliency, size: tuple[int, int]) -> np.ndarray:
    """The map resized to ``size = (H, W)`` in float64 by :func:`postprocess.upsample`
    (bilinear, half-pixel centres, antialiased when shrinking)."""
    arr = _as_map(saliency)
    H, W = int(size[0]), int(size[1])
    if H <= 0 or W <= 0:
        raise MetricError(f"target size must be positive (H, W), got {size!r}")
    return upsample(arr, (H, W), dtype=np.float64)


def minmax_scale(x: np.ndarray) -> np.ndarray:
    """``(x - min) / (max - min)`` in float64; a constant map (:func:`is_constant`) gives zeros."""
    x = np.asarray(x, dtype=np.float64)
    if is_constant(x):
        return np.zeros_like(x)
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo)


def _prepare(saliency, mask) -> tuple[np.ndarray, np.ndarray]:
    m = _as_mask(mask)
    return upsample_bilinear(saliency, m.shape), m


def smm(saliency, mask, threshold: float = 0.3) -> float | None:
    """Saliency-map Mask Metric (the paper's SMM, docs/ARCHITECTURE.md section 7; seed 001).

    ``s = minmax(upsample_bilinear(saliency, mask.shape))`` in [0, 1] (a constant map becomes all
    zeros), ``S = {p : s_p > threshold}``, and ``SMM = |S ∩ M| / |S ∪ M|`` (Jaccard index).

    The comparison is strict (``>``): the paper keeps pixels "above" the threshold, and a strict
    test means a constant map (scaled to zeros) selects nothing for any threshold >= 0 instead of
    selecting the whole image at threshold 0.

    Args:
        saliency: ``(h, w)`` map on any grid (patch grid or image size).
        mask: ``(H, W)`` bool object mask.
        threshold: in [0, 1]; 0.3 in the paper.

    Returns:
        The Jaccard index in [0, 1], or None when the mask is empty: with no object there is
        nothing to overlap, so any map would score 0 (or 0/0), which would read as "looks
        nowhere near the object" instead of "no object to score against".
    """
    if not 0.0 <= float(threshold) <= 1.0:
        raise MetricError(f"threshold must lie in [0, 1], got {threshold!r}")
    s, m = _prepare(saliency, mask)
    if not m.any():
        return None
    selected = minmax_scale(s) > float(threshold)
    union = int(np.count_nonzero(selected | m))
    return int(np.count_nonzero(selected & m)) / union


# Zhang et al.'s tolerance, and the input size it is quoted for here (see pointing_tolerance).
POINTING_TOLERANCE_PX = 15.0
POINTING_REFERENCE_SIZE = 224


def pointing_tolerance(size: tuple[int, int]) -> float:
    """The default pointing-game tolerance for a ``size = (H, W)`` image, in its pixels:
    ``15 * min(H, W) / 224`` (15 px exactly at 224 x 224).

    Zhang et al. allow 15 px on PASCAL VOC / COCO images of about 500 px, and ViT work uses the
    same 15 px on 224 px inputs. Kept at 15 px, the margin would grow with smaller images: on our
    64 px images it is 23 % of the side, a 31 x 31 window around every mask pixel, and nearly any
    map would hit. Scaling by ``min(H, W) / 224`` keeps the margin the same share of the image
    as at the 224 px size the protocol is used at (4.3 px at 64 px, about half an 8 px patch).
    """
    H, W = int(size[0]), int(size[1])
    return POINTING_TOLERANCE_PX * min(H, W) / POINTING_REFERENCE_SIZE


def pointing_game(saliency, mask, tolerance: float | None = None) -> bool | None:
    """Pointing game with a tolerance (Zhang et al. 2018, "Top-down neural attention by
    excitation backprop", IJCV; ECCV 2016).

    With ``s`` the map upsampled to the mask, ``P = {p : s_p = max s}`` its maxima and
    ``d(p) = min_{q in M} ||p - q||_2`` the Euclidean distance from pixel p to the nearest mask
    pixel (``scipy.ndimage.distance_transform_edt`` of the complement of M; 0 inside M), a **hit**
    when ``min_{p in P} d(p) <= tolerance``. Ties: a hit when **any** maximum is close enough (as
    in Quantus' ``PointingGame``). ``tolerance=0`` is the strict game (maximum inside the mask).

    Args:
        saliency: ``(h, w)`` map on any grid.
        mask: ``(H, W)`` bool object mask.
        tolerance: in pixels of the mask's grid; None (the default) is Zhang et al.'s 15 px
            quoted at 224 px and scaled to this mask's size, :func:`pointing_tolerance`
            (4.3 px on a 64 px image).

    Returns:
        True / False; None when the mask is empty or the map is constant (a constant map points
        nowhere, and "any maximum" would otherwise make it hit every non-empty mask).
    """
    s, m = _prepare(saliency, mask)
    tol = pointing_tolerance(m.shape) if tolerance is None else float(tolerance)
    if not tol >= 0.0:
        raise MetricError(f"pointing tolerance must be >= 0 pixels, got {tolerance!r}")
    if not m.any() or is_constant(s):
        return None
    peaks = s == s.max()
    if m[peaks].any():
        return True  # distance 0: no distance transform needed
    # Imported here: scipy.ndimage costs start-up time the window should not pay up front.
    from scipy.ndimage import distance_transform_edt

    distance = distance_transform_edt(~m)  # (H, W) float64: to the nearest mask pixel
    return bool(distance[peaks].min() <= tol)


def relevance_mass(saliency, mask) -> float | None:
    """Relevance mass accuracy / energy-based pointing game.

    ``sum_{p in M} s_p^+ / sum_p s_p^+`` with ``s^+ = max(s, 0)`` the non-negative part of the
    upsampled (not min-max scaled: scaling would shift the zero) map. Sources: Arras, Osman and
    Samek 2022 ("CLEVR-XAI", relevance mass accuracy); Wang et al. 2020 (Score-CAM, energy-based
    pointing game).

    Returns:
        The share in [0, 1]; None when the mask is empty or the map has no positive mass.
    """
    s, m = _prepare(saliency, mask)
    pos = np.clip(s, 0.0, None)
    total = float(pos.sum())
    if not m.any() or total <= 0.0:
        return None
    return float(pos[m].sum()) / total


def relevance_rank_accuracy(saliency, mask) -> float | None:
    """Relevance rank accuracy (Arras, Osman and Samek 2022, "CLEVR-XAI").

    With ``K = |M|``, take the K pixels of highest saliency and report the share of them that lie
    inside M. Ties at the K-th value are resolved in expectation rather than by an arbitrary
    order: pixels strictly above the K-th value all count; the ``r`` remaining slots are shared by
    the pixels equal to it, contributing ``r * (tied inside / tied)``. A constant map therefore
    scores the chance level ``|M| / (H W)``.

    Returns:
        The share in [0, 1]; None when the mask is empty.
    """
    s, m = _prepare(saliency, mask)
    k = int(np.count_nonzero(m))
    if k == 0:
        return None
    flat, inside = s.ravel(), m.ravel()
    kth = np.partition(flat, flat.size - k)[flat.size - k]  # K-th largest value
    above = flat > kth
    tied = flat == kth
    remaining = k - int(np.count_nonzero(above))  # slots left for the tied pixels, >= 1
    hits = np.count_nonzero(above & inside) + remaining * (
        np.count_nonzero(tied & inside) / np.count_nonzero(tied)
    )
    return float(hits) / k


def _iou(pred: np.ndarray, truth: np.ndarray) -> float | None:
    union = int(np.count_nonzero(pred | truth))
    return None if union == 0 else int(np.count_nonzero(pred & truth)) / union


def average_precision(truth: np.ndarray, score: np.ndarray) -> float | None:
    """Average precision of ``score`` for the binary ``truth``, ties grouped as one threshold.

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds in decreasing order
    (precision P_n and recall R_n of "score >= threshold n", ``R_{-1} = 0``): the definition of
    ``sklearn.metrics.average_precision_score`` (no interpolation), which the tests check it
    against. Written in numpy because sklearn's input validation costs ~7 ms a call, which
    dominated :func:`localisation_metrics` on 64x64 maps.

    Returns:
        AP in [0, 1]; None when ``truth`` has no positive (precision-recall is undefined).
    """
    y = np.asarray(truth, dtype=bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    order = np.argsort(-s)  # the order inside a run of ties does not matter (grouped below)
    return _ap_sorted(y[order], s[order])


def _ap_sorted(y: np.ndarray, s: np.ndarray) -> float | None:
    """:func:`average_precision` for labels ``y`` and scores ``s`` sorted by decreasing score."""
    n_pos = int(np.count_nonzero(y))
    if n_pos == 0:
        return None
    # Last index of each run of equal scores: one threshold per distinct value.
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]
    tp = np.cumsum(y)[last].astype(np.float64)
    precision = tp / (last + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _mean_defined(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def segmentation_scores(saliency, mask) -> dict:
    """Chefer, Gur and Wolf's segmentation protocol (CVPR 2021, ImageNet-segmentation test).

    Our reading of their ``imagenet_seg_eval.py``, per image:

    * ``s = minmax(upsample_bilinear(saliency))``; prediction ``object = s > mean(s)``
      (strict, as their ``Res.gt(Res.mean())``), background otherwise.
    * ``pixel_accuracy``: share of pixels whose predicted class equals the mask's.
    * ``iou_object``, ``iou_background``: Jaccard of each predicted class with its true region;
      ``miou`` their mean over the two classes (Chefer et al. sum intersections and unions over
      the whole dataset before dividing; here the per-image value is returned).
    * ``ap_object = AP(M, s)``, ``ap_background = AP(not M, 1 - s)`` over all pixels, AP as
      ``sklearn.metrics.average_precision_score`` (:func:`average_precision`).
    * ``map``: their ``get_ap_scores``, ONE AP over the ``2 H W`` entries of the two one-hot
      channels pooled, ``AP([not M, M], [1 - s, s])`` (the channels concatenated, not the mean
      of the two class APs). It is always defined (the pooled labels hold exactly ``H W``
      positives), and the dataset mAP is its mean over images
      (:class:`~inspector.core.metrics_segmentation.SegmentationAccumulator`).

    A class with no pixel in the mask (empty or full mask) has an undefined AP (None), and an IoU
    that is None when its union is empty; ``miou`` is the mean over the defined classes.

    Returns:
        dict with ``pixel_accuracy``, ``miou``, ``iou_object``, ``iou_background``, ``map``,
        ``ap_object``, ``ap_background``.
    """
    s, m = _prepare(saliency, mask)
    s = minmax_scale(s)
    pred = s > s.mean()
    iou_obj, iou_bg = _iou(pred, m), _iou(~pred, ~m)
    # One sort serves both classes: decreasing s for the object, increasing s (= decreasing
    # 1 - s) for the background.
    flat_s, flat_m = s.ravel(), m.ravel()
    order = np.argsort(flat_s)  # (H*W,) increasing
    ap_obj = _ap_sorted(flat_m[order[::-1]], flat_s[order[::-1]])
    ap_bg = _ap_sorted(~flat_m[order], 1.0 - flat_s[order])
    pooled = average_precision(np.r_[~flat_m, flat_m], np.r_[1.0 - flat_s, flat_s])
    return {
        "pixel_accuracy": float(np.mean(pred == m)),
        "miou": _mean_defined([iou_obj, iou_bg]),
        "iou_object": iou_obj,
        "iou_background": iou_bg,
        "map": pooled,
        "ap_object": ap_obj,
        "ap_background": ap_bg,
    }


def localisation_metrics(
    saliency, mask, threshold: float = 0.3, pointing_tolerance: float | None = None
) -> dict:
    """Every localisation score of this module for one (map, mask) pair, as a flat dict.

    ``threshold`` is SMM's; ``pointing_tolerance`` the pointing game's, in mask pixels (None:
    15 px at 224 px, scaled to the mask, :func:`pointing_tolerance`).

    Keys: ``smm``, ``pointing_game``, ``relevance_mass``, ``relevance_rank_accuracy``, the keys of
    :func:`segmentation_scores`, and ``mask_fraction`` (share of image pixels in the mask, to
    read SMM beside: a mask covering most of the image makes a diffuse map score high).
    Undefined values are None.
    """
    s, m = _prepare(saliency, mask)  # upsample once; the functions below see an (H, W) map
    out = {
        "smm": smm(s, m, threshold),
        "pointing_game": pointing_game(s, m, pointing_tolerance),
        "relevance_mass": relevance_mass(s, m),
        "relevance_rank_accuracy": relevance_rank_accuracy(s, m),
    }
    out.update(segmentation_scores(s, m))
    out["mask_fraction"] = float(np.mean(m))
    return out
