"""Object-mask sources for SMM and the localisation metrics: files, boxes and Mask R-CNN.

Every source returns a ``(H, W)`` bool numpy array at the requested image size.
Dataset masks (exact synthetic masks, Tiny ImageNet boxes) come with
:class:`~inspector.core.data.types.ImageDataset`; :func:`box_mask` rasterises a box.

Mask R-CNN (He et al. 2017) is the torchvision model the paper used for its masks (COCO weights,
detections over score 0.3, mask pixels over 0.5). It is built with ``weights=None,
weights_backbone=None`` and filled from a local state-dict file the user names: nothing is
ever downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "MaskError",
    "MaskResult",
    "MaskRCNNSegmenter",
    "MASKRCNN_VARIANTS",
    "mask_from_file",
    "box_mask",
]

MASKRCNN_VARIANTS: tuple[str, ...] = ("maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2")
_CLS_KEY = "roi_heads.box_predictor.cls_score.weight"  # (num_classes, 1024)


class MaskError(ValueError):
    """A mask source is missing, unreadable or does not fit (size, weights file, instance)."""


def _check_size(size) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise MaskError(f"size must be (H, W), got {size!r}") from None
    if h <= 0 or w <= 0:
        raise MaskError(f"size must be (H, W) with positive values, got {size!r}")
    return h, w


def mask_from_file(path: str | os.PathLike, size: tuple[int, int]) -> np.ndarray:
    """Read a mask image: any non-zero pixel is object; resized to ``size`` by nearest neighbour.

    Args:
        path: an image file (PNG, JPEG, ...; see :mod:`inspector.core.imageio`).
        size: ``(H, W)`` of the image the mask belongs to.

    Returns:
        ``(H, W)`` bool array.

    Raises:
        MaskError: the file is missing or not a readable image, or ``size`` is invalid.
    """
    from inspector.core.imageio import ImageReadError, read_mask

    size = _check_size(size)
    try:
        return read_mask(path, size)
    except ImageReadError as exc:
        raise MaskError(f"cannot read mask: {exc}") from exc


def box_mask(size: tuple[int, int], x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """A rectangle mask with **inclusive** pixel corners ``(x0, y0)`` and ``(x1, y1)``.

    x is the column, y the row. Parts of the box outside the image are clipped (a box entirely
    outside gives an empty mask).

    Args:
        size: ``(H, W)``.
        x0, y0, x1, y1: integer pixel coordinates with ``x0 <= x1`` and ``y0 <= y1``.

    Returns:
        ``(H, W)`` bool array, True on rows ``y0..y1`` and columns ``x0..x1``.
    """
    h, w = _check_size(size)
    coords = []
    for name, v in (("x0", x0), ("y0", y0), ("x1", x1), ("y1", y1)):
        if isinstance(v, bool) or float(v) != int(v):
            raise MaskError(f"box corner {name} must be an integer pixel index, got {v!r}")
        coords.append(int(v))
    x0, y0, x1, y1 = coords
    if x1 < x0 or y1 < y0:
        raise MaskError(f"box corners must satisfy x0 <= x1 and y0 <= y1, got {coords}")
    mask = np.zeros((h, w), dtype=bool)
    mask[max(y0, 0) : max(y1 + 1, 0), max(x0, 0) : max(x1 + 1, 0)] = True
    return mask


@dataclass
class MaskResult:
    """Output of :meth:`MaskRCNNSegmenter.segment`.

    Attributes:
        mask: ``(H, W)`` bool, the union of the kept instances (or the chosen one).
        detections: one ``(label, score, (x0, y0, x1, y1))`` per detection over the score
            threshold, in decreasing score order (the order ``instance`` indexes).
        instance_masks: ``(K, H, W)`` bool, each detection's mask (for choosing an instance).
    """

    mask: np.ndarray
    detections: list[tuple[int, float, tuple[float, float, float, float]]]
    instance_masks: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), bool))


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise MaskError(f"Mask R-CNN weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, pickled objects, ...
        raise MaskError(f"cannot load Mask R-CNN weights from {path}: {exc}") from exc
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):  # common training-script wrappers
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise MaskError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    if _CLS_KEY not in obj:
        raise MaskError(f"{path} is not a Mask R-CNN state dict: key {_CLS_KEY!r} is missing")
    return obj


class MaskRCNNSegmenter:
    """torchvision Mask R-CNN loaded from a local state-dict file.

    The number of classes is read from the file (``roi_heads.box_predictor.cls_score.weight``
    has one row per class, background included: 91 for COCO). COCO class names are attached
    when there are 91 classes (torchvision's metadata, no download).

    Args:
        weights_path: a ``torch.save``'d state dict, e.g. torchvision's
            ``maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth`` copied by the user.
        variant: ``"maskrcnn_resnet50_fpn"`` or ``"maskrcnn_resnet50_fpn_v2"``.
        score_threshold: keep detections with score >= this (0.3 in the paper).
        mask_threshold: a pixel belongs to an instance when its mask probability is > this
            (0.5 in the paper).
        device: torch device string.
        min_size, max_size: torchvision's internal resize (800 / 1333 by default); smaller is
            faster and coarser.
        **model_kwargs: passed to the torchvision builder (e.g. ``box_detections_per_img``,
            ``rpn_post_nms_top_n_test``).

    Raises:
        MaskError: unknown variant, bad thresholds, missing or mismatching weights file.
    """

    def __init__(
        self,
        weights_path: str | os.PathLike,
        *,
        variant: str = "maskrcnn_resnet50_fpn",
        score_threshold: float = 0.3,
        mask_threshold: float = 0.5,
        device: str = "cpu",
        min_size: int = 800,
        max_size: int = 1333,
        **model_kwargs,
    ) -> None:
        from torchvision.models import detection

        if variant not in MASKRCNN_VARIANTS:
            raise MaskError(
                f"unknown Mask R-CNN variant {variant!r}; choose from "
                f"{', '.join(MASKRCNN_VARIANTS)}"
            )
        for name, v in (("score_threshold", score_threshold), ("mask_threshold", mask_threshold)):
            if not 0.0 <= float(v) <= 1.0:
                raise MaskError(f"{name} must lie in [0, 1], got {v!r}")
        self.variant = variant
        self.score_threshold = float(score_threshold)
        self.mask_threshold = float(mask_threshold)
        self.device = torch.device(device)
        path = Path(weights_path)
        state = _load_state_dict(path)
        self.num_classes = int(state[_CLS_KEY].shape[0])
        builder = getattr(detection, variant)
        # torchvision drops boxes under its own box_score_thresh (0.05) before we see them:
        # lower it to ours so that score_threshold alone decides.
        model_kwargs.setdefault("box_score_thresh", min(self.score_threshold, 0.05))
        model = builder(
            weights=None,
            weights_backbone=None,
            num_classes=self.num_classes,
            min_size=min_size,
            max_size=max_size,
            **model_kwargs,
        )
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[:4]
            raise MaskError(
                f"{path} does not match torchvision's {variant} with {self.num_classes} classes "
                f"(wrong variant or not a Mask R-CNN file): {' '.join(first)}"
            ) from exc
        self.model = model.eval().to(self.device)
        self.categories: list[str] | None = None
        if self.num_classes == 91:
            meta = detection.MaskRCNN_ResNet50_FPN_Weights.COCO_V1.meta  # plain metadata
            self.categories = list(meta["categories"])

    def label_name(self, label: int) -> str:
        """COCO category name for ``label`` when known, else ``"class {label}"``."""
        if self.categories is not None and 0 <= label < len(self.categories):
            return self.categories[label]
        return f"class {label}"

    def segment(self, image: np.ndarray, *, instance: int | None = None) -> MaskResult:
        """Detect objects in ``image`` and return their mask.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            instance: None for the union of every detection with score >= ``score_threshold``;
                an index into ``detections`` (decreasing score) to keep one instance only.

        Returns:
            :class:`MaskResult`; with no detection an all-False mask and an empty list.

        Raises:
            MaskError: a wrong image shape / dtype or an ``instance`` index out of range.
        """
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise MaskError(f"image must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
        h, w = img.shape[:2]
        # (3, H, W) float in [0, 1]; torchvision normalises with ImageNet statistics itself.
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div(255.0)
        with torch.inference_mode():
            out = self.model([x.to(self.device)])[0]
        scores = out["scores"].cpu()
        keep = scores >= self.score_threshold  # already sorted by decreasing score
        boxes = out["boxes"].cpu()[keep]
        labels = out["labels"].cpu()[keep]
        probs = out["masks"].cpu()[keep][:, 0]  # (K, H, W) in [0, 1], pasted at image size
        instance_masks = (probs > self.mask_threshold).numpy()
        detections = [
            (int(lab), float(sc), tuple(float(v) for v in box))
            for lab, sc, box in zip(
                labels.tolist(), scores[keep].tolist(), boxes.tolist(), strict=True
            )
        ]
        if instance is None:
            mask = instance_masks.any(axis=0) if len(detections) else np.zeros((h, w), bool)
        else:
            if not 0 <= int(instance) < len(detections):
                raise MaskError(
                    f"instance {instance} out of range: {len(detections)} detection(s) with "
                    f"score >= {self.score_threshold}"
                )
            mask = instance_masks[int(instance)].copy()
        return MaskResult(
            mask=np.ascontiguousarray(mask, dtype=bool),
            detections=detections,
            instance_masks=instance_masks.reshape(-1, h, w),
        )
