"""The ground truth of one image opened from a dataset folder: its object mask and true label.

Tiny ImageNet (the layout in :mod:`inspector.core.data.tiny_imagenet`):

* ``<root>/train/<wnid>/images/<file>`` -> the box in ``<root>/train/<wnid>/<wnid>_boxes.txt``,
  label ``<wnid>``;
* ``<root>/val/images/<file>`` -> the row of ``<root>/val/val_annotations.txt`` (wnid, box).

The mask is the inclusive box in the image's own geometry (``mask[y0:y1+1, x0:x1+1]``), as the
dataset loader makes it, so the window and the CLI align it like any other mask. The true label
is matched to a model's classes by wnid, then by readable name (``words.txt``; the paper's
10-class models store these names), then, only for a model whose classes are unnamed
(``0``, ``class 3``), by the position of the wnid among the folder's sorted wnids when the
model has exactly that many classes. A model of other classes (e.g. synthetic shapes) gets no
true label: matching by position alone would name a wrong one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DatasetError
from .tiny_imagenet import (
    _box_mask,
    _read_train_boxes,
    _read_val_annotations,
    read_wnids,
    read_words,
)

__all__ = ["GroundTruth", "image_ground_truth"]

_UNNAMED = re.compile(r"^(class[ _]?)?\d+$", re.IGNORECASE)  # a placeholder class name


@dataclass(frozen=True)
class GroundTruth:
    """An image's annotation.

    Attributes:
        mask: ``(H, W)`` bool, the object box in the image's geometry.
        box: ``(x0, y0, x1, y1)`` inclusive corners.
        wnid: the class's WordNet id.
        name: its readable name (``words.txt``; the wnid without it).
        annotation: the file the box came from.
        root: the dataset folder.
    """

    mask: np.ndarray
    box: tuple[int, int, int, int]
    wnid: str
    name: str
    annotation: Path
    root: Path

    def class_index(self, class_names: Sequence[str]) -> int | None:
        """This label among a model's classes (module docstring), or None."""
        names = list(class_names)
        for key in (self.wnid, self.name):
            if key in names:
                return names.index(key)
        lowered = [n.lower() for n in names]
        if self.name.lower() in lowered:
            return lowered.index(self.name.lower())
        if not all(_UNNAMED.match(n.strip()) for n in names):
            return None
        try:
            wnids = read_wnids(self.root)
        except DatasetError:
            return None
        if len(wnids) == len(names) and self.wnid in wnids:
            return wnids.index(self.wnid)
        return None


def _name(root: Path, wnid: str) -> str:
    return read_words(root, [wnid])[0]


def image_ground_truth(path: str | os.PathLike, image_shape: tuple[int, int]) -> GroundTruth | None:
    """The box mask and label of an image inside a Tiny ImageNet folder; None for any other image
    (or one the annotations do not list).

    Args:
        path: the image file.
        image_shape: ``(H, W)`` of the image as read (the mask's size).

    Raises:
        DatasetError: the annotation file exists but is malformed.
    """
    p = Path(path).resolve()
    h, w = int(image_shape[0]), int(image_shape[1])
    images = p.parent
    if images.name != "images":
        return None
    split = images.parent
    if split.name == "val":  # <root>/val/images/<file>
        root = split.parent
        if not (split / "val_annotations.txt").is_file():
            return None
        for file, wnid, box in _read_val_annotations(root):
            if file == p.name:
                ann = split / "val_annotations.txt"
                return GroundTruth(_box_mask(box, h, w), box, wnid, _name(root, wnid), ann, root)
        return None
    if split.parent.name == "train":  # <root>/train/<wnid>/images/<file>
        wnid, root = split.name, split.parent.parent
        ann = split / f"{wnid}_boxes.txt"
        if not ann.is_file():
            return None
        box = _read_train_boxes(ann).get(p.name)
        if box is None:
            return None
        return GroundTruth(_box_mask(box, h, w), box, wnid, _name(root, wnid), ann, root)
    return None
