"""Datasets: synthetic shapes with exact masks, Tiny ImageNet with box masks, image folders.

Every loader returns a :class:`DatasetSplits` of in-memory :class:`ImageDataset` tensors.
:func:`load_dataset` picks the loader from a single specification string, as the CLI and the
GUI receive it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inspector.core.data.errors import DatasetError
from inspector.core.data.image_folder import load_image_folder
from inspector.core.data.synthetic import (
    SYNTHETIC_CLASSES,
    SyntheticSample,
    make_synthetic,
    render_sample,
    shape_outline,
)
from inspector.core.data.tiny_imagenet import is_tiny_imagenet, load_tiny_imagenet
from inspector.core.data.types import DatasetSplits, ImageDataset

__all__ = [
    "DatasetError",
    "DatasetSplits",
    "ImageDataset",
    "SYNTHETIC_CLASSES",
    "SyntheticSample",
    "load_dataset",
    "load_image_folder",
    "load_tiny_imagenet",
    "make_synthetic",
    "render_sample",
    "shape_outline",
]


def load_dataset(
    spec: str | os.PathLike,
    *,
    classes: int | Sequence[str] | None = None,
    seed: int = 0,
    image_size: int = 64,
    **kwargs: Any,
) -> DatasetSplits:
    """Load a dataset from a specification.

    * ``"synthetic"`` -> :func:`make_synthetic` (``classes`` an int <= 10; extra keyword
      arguments such as ``train_per_class`` pass through);
    * a folder with ``wnids.txt`` or ``train/<wnid>/images`` -> :func:`load_tiny_imagenet`
      (``classes``: a count or wnids; images resized only when ``image_size`` is not 64);
    * any other folder -> :func:`load_image_folder` (class sub-folders; all of them are
      used: a number of classes must equal the folder's, a list its class names).

    ``classes=None`` means 10 for the synthetic data and Tiny ImageNet, all of an image
    folder's classes.

    Args:
        spec: ``"synthetic"`` or a folder path.
        classes: number of classes, or class identifiers (wnids / sub-folder names).
        seed: seed for generation / splits.
        image_size: side of the square images.
        **kwargs: passed to the chosen loader.

    Raises:
        DatasetError: unknown specification, or whatever the loader reports.
    """
    text = os.fspath(spec)
    named = 10 if classes is None else classes  # synthetic / Tiny ImageNet default
    if text.strip().lower() == "synthetic":
        classes = named
        if isinstance(classes, bool) or not isinstance(classes, int):
            raise DatasetError(
                f"the synthetic dataset takes classes as a number 1..10, got {classes!r}"
            )
        if not 1 <= classes <= len(SYNTHETIC_CLASSES):
            raise DatasetError(
                f"the synthetic dataset has {len(SYNTHETIC_CLASSES)} classes; "
                f"classes must be 1..{len(SYNTHETIC_CLASSES)}, got {classes}"
            )
        try:
            return make_synthetic(seed=seed, image_size=image_size, num_classes=classes, **kwargs)
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"synthetic dataset: {exc}") from exc
    path = Path(text).expanduser()
    if path.is_dir():
        if is_tiny_imagenet(path):
            size = None if int(image_size) == 64 else int(image_size)
            return load_tiny_imagenet(path, classes=named, seed=seed, image_size=size, **kwargs)
        splits = load_image_folder(path, image_size=image_size, seed=seed, **kwargs)
        found = len(splits.class_names)
        if isinstance(classes, int) and not isinstance(classes, bool) and classes != found:
            raise DatasetError(
                f"{classes} classes were asked for but the image folder {path} has {found} "
                f"({', '.join(splits.class_names[:10])}{', ...' if found > 10 else ''}); an "
                f"image folder trains on all its classes: drop --classes or give {found}"
            )
        if not isinstance(classes, int) and classes is not None:
            wanted = list(classes)
            unknown = [c for c in wanted if c not in splits.class_names]
            if unknown:
                raise DatasetError(
                    f"unknown class(es) {unknown} in {path}; found: {splits.class_names}"
                )
            if sorted(wanted) != splits.class_names:
                raise DatasetError(
                    f"selecting a subset of classes is not supported for "
                    f"image folders; make a folder with only {sorted(wanted)}"
                )
        return splits
    if path.exists():
        raise DatasetError(f"dataset path is a file, not a folder: {path}")
    raise DatasetError(
        f"unknown dataset {text!r}: use 'synthetic', a Tiny ImageNet folder (with wnids.txt "
        f"or train/<wnid>/images) or a folder of class sub-folders; no such folder exists"
    )
