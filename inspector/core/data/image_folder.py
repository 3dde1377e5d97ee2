"""A folder of images with one sub-folder per class, optionally with a parallel mask folder.

Layout::

    root/<class_a>/.../img001.jpg        class names = sorted sub-folder names = labels 0..K-1
    root/<class_b>/img002.png
    mask_root/<class_a>/.../img001.png   optional; same relative path, any image suffix

Images are resized to ``image_size`` x ``image_size`` (bilinear, aspect ratio not kept) and
masks (non-zero = object) with nearest neighbour. The split into train / val / test is
stratified by class and seeded: per class, ``round(n * val_fraction)`` images go to val and
``round(n * test_fraction)`` to test (at least one each when the fraction is > 0 and the
class has enough images to keep one for training).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from inspector.core.data.errors import DatasetError
from inspector.core.data.types import DatasetSplits, ImageDataset
from inspector.core.imageio import IMAGE_SUFFIXES, ImageReadError, read_image, read_mask

__all__ = ["load_image_folder", "find_mask"]


def find_mask(mask_root: Path, rel: Path) -> Path | None:
    """The mask file for image ``rel`` (relative path) under ``mask_root``, any image suffix."""
    stem = mask_root / rel.parent / rel.stem
    for suffix in (rel.suffix, *IMAGE_SUFFIXES, *(s.upper() for s in IMAGE_SUFFIXES)):
        cand = stem.with_name(stem.name + suffix)
        if cand.is_file():
            return cand
    return None


def _split_counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    n_val = round(n * val_fraction)
    n_test = round(n * test_fraction)
    if val_fraction > 0 and n_val == 0 and n >= 3:
        n_val = 1
    if test_fraction > 0 and n_test == 0 and n - n_val >= 2:
        n_test = 1
    return n_val, n_test


def _load(path: Path, mask_path: Path | None, size: int) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        img = read_image(path)
        if img.shape[:2] != (size, size):
            img = np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))
        mask = None if mask_path is None else read_mask(mask_path, size=(size, size))
    except ImageReadError as exc:
        raise DatasetError(str(exc)) from exc
    return img, mask


def load_image_folder(
    root: str | os.PathLike,
    *,
    mask_root: str | os.PathLike | None = None,
    image_size: int = 64,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> DatasetSplits:
    """Load a class-per-sub-folder image collection into stratified, seeded splits.

    Args:
        root: folder with one sub-folder per class (images found recursively inside each).
        mask_root: optional folder of masks with the same relative paths (any image suffix);
            every image must then have a mask.
        image_size: side of the square images after resizing.
        val_fraction, test_fraction: share of each class for val / test (sum < 1).
        seed: seed of the split.

    Returns:
        :class:`DatasetSplits` with ids = paths relative to ``root`` (POSIX style).

    Raises:
        DatasetError: missing folder, no classes or images, missing masks, unreadable files,
            bad fractions.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"image folder not found: {root}")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DatasetError(
            f"val_fraction and test_fraction must be in [0, 1) with a sum < 1, "
            f"got {val_fraction} and {test_fraction}"
        )
    if int(image_size) < 8:
        raise DatasetError(f"image_size must be >= 8, got {image_size}")
    size = int(image_size)
    mroot = None if mask_root is None else Path(mask_root)
    if mroot is not None and not mroot.is_dir():
        raise DatasetError(f"mask folder not found: {mroot}")

    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    per_class: list[list[Path]] = []
    for name in classes:
        files = sorted(
            p.relative_to(root)
            for p in (root / name).rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        per_class.append(files)
    kept = [(c, f) for c, f in zip(classes, per_class, strict=True) if f]
    if not kept:
        raise DatasetError(
            f"no class sub-folders with images ({', '.join(IMAGE_SUFFIXES)}) in {root}"
        )
    classes = [c for c, _ in kept]
    per_class = [f for _, f in kept]

    rng = np.random.default_rng(int(seed))
    splits: dict[str, list[tuple[Path, int]]] = {"train": [], "val": [], "test": []}
    for label, files in enumerate(per_class):
        order = rng.permutation(len(files))
        n_val, n_test = _split_counts(len(files), val_fraction, test_fraction)
        chosen = [files[i] for i in order]
        splits["val"] += [(p, label) for p in sorted(chosen[:n_val])]
        splits["test"] += [(p, label) for p in sorted(chosen[n_val : n_val + n_test])]
        splits["train"] += [(p, label) for p in sorted(chosen[n_val + n_test :])]

    masks_for: dict[Path, Path | None] = {}
    all_files = [p for files in per_class for p in files]
    if mroot is not None:
        missing = []
        for rel in all_files:
            masks_for[rel] = find_mask(mroot, rel)
            if masks_for[rel] is None:
                missing.append(rel)
        if missing:
            raise DatasetError(
                f"{len(missing)} image(s) have no mask under {mroot} (e.g. {missing[0].as_posix()})"
            )

    def build(items: list[tuple[Path, int]]) -> ImageDataset:
        workers = min(16, 2 * (os.cpu_count() or 2))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            loaded = list(
                pool.map(lambda it: _load(root / it[0], masks_for.get(it[0]), size), items)
            )
        n = len(items)
        images = np.zeros((n, size, size, 3), np.uint8)
        masks = np.zeros((n, size, size), bool) if mroot is not None else None
        for i, (img, m) in enumerate(loaded):
            images[i] = img
            if masks is not None:
                masks[i] = m
        return ImageDataset(
            images=torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))),
            labels=torch.tensor([lab for _, lab in items], dtype=torch.int64),
            masks=None if masks is None else torch.from_numpy(masks),
            class_names=list(classes),
            ids=[p.as_posix() for p, _ in items],
        )

    source = {
        "kind": "image-folder",
        "root": str(root),
        "mask_root": None if mroot is None else str(mroot),
        "image_size": size,
        "val_fraction": float(val_fraction),
        "test_fraction": float(test_fraction),
        "seed": int(seed),
    }
    return DatasetSplits(
        train=build(splits["train"]),
        val=build(splits["val"]),
        test=build(splits["test"]),
        source=source,
    )
