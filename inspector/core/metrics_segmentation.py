"""Chefer et al.'s segmentation protocol accumulated over a dataset.

Chefer, Gur and Wolf 2021, "Transformer Interpretability Beyond Attention Visualization"
(CVPR), section 4 "Segmentation" on ImageNet-segmentation, as their ``imagenet_seg_eval.py``
computes it. For image ``i`` with map ``s_i`` (bilinearly upsampled to the mask ``M_i`` and
min-max scaled to [0, 1]; a constant map becomes zeros):

* prediction ``F_i = {p : s_ip > mean(s_i)}`` (object), ``B_i`` its complement (background);
  the threshold is the map's own mean, strict as their ``Res.gt(Res.mean())``;
* per class ``c`` in {object, background}, with ``P_ic`` the predicted and ``T_ic`` the true
  region (``M_i`` or its complement), the counts ``I_ic = |P_ic ∩ T_ic|`` and
  ``U_ic = |P_ic ∪ T_ic|``.

The dataset scores are then ratios of sums, not means of per-image ratios:

* ``pixel_accuracy = sum_i |{p : [p in F_i] = [p in M_i]}| / sum_i |pixels_i|``;
* ``IoU_c = sum_i I_ic / sum_i U_ic`` and ``miou = (IoU_object + IoU_background) / 2``
  (their ``total_inter / total_union`` then ``IoU.mean()``), so a large image or object
  weighs more than a small one, and an image with an empty union adds nothing;
* ``map = (1 / N) sum_i AP_i`` with ``AP_i = AP([not M_i, M_i], [1 - s_i, s_i])``, one
  ``sklearn.metrics.average_precision_score`` over the two one-hot channels pooled (their
  ``get_ap_scores``; see :func:`inspector.core.metrics.segmentation_scores`).

Chefer et al. add ``np.spacing(1)`` to the denominators; here an empty denominator gives None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .metrics import _prepare, minmax_scale, segmentation_scores

__all__ = ["SegmentationAccumulator", "SegmentationTotals"]


@dataclass
class SegmentationTotals:
    """The dataset-level numbers of :class:`SegmentationAccumulator` (None when undefined)."""

    images: int
    pixel_accuracy: float | None
    iou_object: float | None
    iou_background: float | None
    miou: float | None
    map: float | None

    def to_dict(self) -> dict:
        return {
            "images": self.images,
            "pixel_accuracy": self.pixel_accuracy,
            "miou": self.miou,
            "iou_object": self.iou_object,
            "iou_background": self.iou_background,
            "map": self.map,
        }


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


class SegmentationAccumulator:
    """Adds (map, mask) pairs one image at a time; :meth:`result` gives the dataset scores.

    Integer counts are kept (exact for any dataset size); the per-image AP values are kept and
    summed with ``math.fsum`` (correctly rounded), so the totals do not depend on the order in
    which images were added: :meth:`merge` of shards (``evaluate --ray``) gives exactly the
    numbers of one pass over the whole dataset.
    """

    def __init__(self) -> None:
        self.images = 0
        self.correct = 0
        self.pixels = 0
        # index 0 = object, 1 = background
        self.intersection = np.zeros(2, dtype=np.int64)
        self.union = np.zeros(2, dtype=np.int64)
        self.ap_values: list[float] = []  # per-image AP, float64

    def add(self, saliency, mask) -> dict:
        """Score one image and add it to the totals.

        Args:
            saliency: ``(h, w)`` map on any grid (upsampled bilinearly to the mask).
            mask: ``(H, W)`` bool object mask.

        Returns:
            The image's own :func:`~inspector.core.metrics.segmentation_scores`.
        """
        s, m = _prepare(saliency, mask)
        pred = minmax_scale(s)
        pred = pred > pred.mean()  # (H, W) bool: predicted object
        for c, (p, t) in enumerate(((pred, m), (~pred, ~m))):
            self.intersection[c] += int(np.count_nonzero(p & t))
            self.union[c] += int(np.count_nonzero(p | t))
        self.correct += int(np.count_nonzero(pred == m))
        self.pixels += m.size
        scores = segmentation_scores(s, m)
        self.ap_values.append(float(scores["map"]))  # pooled AP: always defined
        self.images += 1
        return scores

    def merge(self, other: SegmentationAccumulator) -> SegmentationAccumulator:
        """Add ``other``'s images to these totals (in place; returns ``self``)."""
        self.images += other.images
        self.correct += other.correct
        self.pixels += other.pixels
        self.intersection += other.intersection
        self.union += other.union
        self.ap_values += other.ap_values
        return self

    def result(self) -> SegmentationTotals:
        iou = [_ratio(int(i), int(u)) for i, u in zip(self.intersection, self.union, strict=True)]
        defined = [v for v in iou if v is not None]
        return SegmentationTotals(
            images=self.images,
            pixel_accuracy=_ratio(self.correct, self.pixels),
            iou_object=iou[0],
            iou_background=iou[1],
            miou=float(np.mean(defined)) if defined else None,
            map=math.fsum(self.ap_values) / self.images if self.images else None,
        )
