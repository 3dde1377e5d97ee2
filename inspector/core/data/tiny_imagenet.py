"""Tiny ImageNet (the full 200-class folder or the paper's 10-class subset) with box masks.

On-disk layout (Tiny ImageNet's own, unchanged)::

    root/wnids.txt                         one WordNet id a line
    root/words.txt                         wnid<TAB>name, name, ...
    root/train/<wnid>/images/<wnid>_<k>.JPEG
    root/train/<wnid>/<wnid>_boxes.txt     file<TAB>x0<TAB>y0<TAB>x1<TAB>y1 (inclusive corners)
    root/val/images/val_<k>.JPEG
    root/val/val_annotations.txt           file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1

Labels follow the **sorted** wnid order of the chosen classes, so ``classes=10`` on either the
full folder or the 10-class subset gives the paper's labels 0-9 (goldfish ... tarantula).

Splits:

* ``train``: the training images of the chosen classes (optionally ``train_per_class`` of them,
  a seeded random subset), minus ``val_from_train`` per class when that is > 0;
* ``val``: the official validation images of the chosen classes, or, when
  ``val_from_train > 0``, the held-out training images;
* ``test``: always the official validation images. Tiny ImageNet's test labels are not
  public, and the seed paper reports its "test" accuracy on the official validation images,
  so with ``val_from_train == 0`` val and test are the same images (select on train only).

Each image's object mask is its bounding box (``mask[y0:y1+1, x0:x1+1] = True``). JPEGs are
decoded by a thread pool (PIL releases the GIL while decoding); greyscale ones become RGB.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from inspector.core.data.errors import DatasetError
from inspector.core.data.types import DatasetSplits, ImageDataset
from inspector.core.imageio import ImageReadError, read_image

__all__ = ["load_tiny_imagenet", "read_wnids", "read_words", "is_tiny_imagenet"]

_Box = tuple[int, int, int, int]  # x0, y0, x1, y1 inclusive


def _natural_key(name: str) -> tuple:
    """Sort ``n01443537_10.JPEG`` after ``n01443537_9.JPEG``."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def is_tiny_imagenet(root: str | os.PathLike) -> bool:
    """True when ``root`` looks like a Tiny ImageNet folder (``wnids.txt`` or
    ``train/<wnid>/images``)."""
    root = Path(root)
    if (root / "wnids.txt").is_file():
        return True
    train = root / "train"
    return train.is_dir() and any((d / "images").is_dir() for d in train.iterdir() if d.is_dir())


def read_wnids(root: str | os.PathLike) -> list[str]:
    """The sorted wnids of a Tiny ImageNet folder.

    From ``wnids.txt``; without it, from the ``train/<wnid>/images`` folders present.

    Raises:
        DatasetError: the folder is missing or holds neither.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"Tiny ImageNet folder not found: {root}")
    path = root / "wnids.txt"
    if path.is_file():
        wnids = [w.strip() for w in path.read_text(encoding="utf-8").splitlines() if w.strip()]
    else:
        train = root / "train"
        wnids = (
            sorted(d.name for d in train.iterdir() if (d / "images").is_dir())
            if train.is_dir()
            else []
        )
    if not wnids:
        raise DatasetError(
            f"no wnids in {root}: expected a non-empty wnids.txt or train/<wnid>/images folders"
        )
    if len(set(wnids)) != len(wnids):
        raise DatasetError(f"{path} lists a wnid twice")
    return sorted(wnids)


def read_words(root: str | os.PathLike, wnids: Sequence[str]) -> list[str]:
    """Readable class names: the first comma-separated name in ``words.txt`` (else the wnid)."""
    path = Path(root) / "words.txt"
    names: dict[str, str] = {}
    wanted = set(wnids)
    if path.is_file():
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                wnid, _, words = line.rstrip("\n").partition("\t")
                if wnid in wanted:
                    names[wnid] = words.split(",")[0].strip() or wnid
    return [names.get(w, w) for w in wnids]


def _parse_box(fields: list[str], path: Path, lineno: int) -> _Box:
    try:
        x0, y0, x1, y1 = (int(float(v)) for v in fields)
    except ValueError as exc:
        raise DatasetError(f"{path}:{lineno}: bad box {fields!r}") from exc
    if x1 < x0 or y1 < y0:
        raise DatasetError(f"{path}:{lineno}: box corners out of order {fields!r}")
    return x0, y0, x1, y1


def _read_train_boxes(path: Path) -> dict[str, _Box]:
    if not path.is_file():
        raise DatasetError(f"missing annotations: {path}")
    boxes = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        f = line.split("\t") if "\t" in line else line.split()
        if len(f) != 5:
            raise DatasetError(f"{path}:{i}: expected file x0 y0 x1 y1, got {line!r}")
        boxes[f[0]] = _parse_box(f[1:], path, i)
    return boxes


def _read_val_annotations(root: Path) -> list[tuple[str, str, _Box]]:
    path = root / "val" / "val_annotations.txt"
    if not path.is_file():
        raise DatasetError(f"missing annotations: {path}")
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        f = line.split("\t") if "\t" in line else line.split()
        if len(f) != 6:
            raise DatasetError(f"{path}:{i}: expected file wnid x0 y0 x1 y1, got {line!r}")
        rows.append((f[0], f[1], _parse_box(f[2:], path, i)))
    return rows


def _choose_classes(all_wnids: list[str], classes: int | Sequence[str], root: Path) -> list[str]:
    if isinstance(classes, (int, np.integer)) and not isinstance(classes, bool):
        if not 1 <= int(classes) <= len(all_wnids):
            raise DatasetError(f"classes must be 1..{len(all_wnids)} for {root}, got {classes}")
        return all_wnids[: int(classes)]
    if isinstance(classes, str):
        classes = [c.strip() for c in classes.split(",") if c.strip()]
    chosen = list(classes)
    if not chosen:
        raise DatasetError("classes is empty")
    if len(set(chosen)) != len(chosen):
        raise DatasetError(f"classes lists a wnid twice: {chosen}")
    unknown = [w for w in chosen if w not in set(all_wnids)]
    if unknown:
        more = " ..." if len(all_wnids) > 5 else ""
        raise DatasetError(
            f"unknown wnid(s) {unknown} for {root}; known: {', '.join(all_wnids[:5])}{more}"
        )
    return sorted(chosen)  # labels follow sorted wnid order


def _box_mask(box: _Box, h: int, w: int) -> np.ndarray:
    """``(h, w)`` bool with the inclusive box set (clipped to the image)."""
    x0, y0, x1, y1 = box
    m = np.zeros((h, w), dtype=bool)
    m[max(y0, 0) : min(y1, h - 1) + 1, max(x0, 0) : min(x1, w - 1) + 1] = True
    return m


def _load_one(path: Path, box: _Box, image_size: int | None) -> tuple[np.ndarray, np.ndarray]:
    try:
        img = read_image(path)  # (H, W, 3) uint8, greyscale -> RGB
    except ImageReadError as exc:
        raise DatasetError(str(exc)) from exc
    h, w = img.shape[:2]
    mask = _box_mask(box, h, w)
    if image_size is not None and (h, w) != (image_size, image_size):
        img = np.asarray(
            Image.fromarray(img).resize((image_size, image_size), Image.Resampling.BILINEAR)
        )
        mask = (
            np.asarray(
                Image.fromarray(mask.astype(np.uint8) * 255).resize(
                    (image_size, image_size), Image.Resampling.NEAREST
                )
            )
            > 0
        )
    return img, mask


def _decode(
    items: list[tuple[Path, _Box, int, str]],
    class_names: list[str],
    image_size: int | None,
    root: Path,
) -> ImageDataset:
    """Decode ``(path, box, label, id)`` items in parallel into an :class:`ImageDataset`."""
    workers = min(16, 2 * (os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda it: _load_one(it[0], it[1], image_size), items))
    if results:
        shapes = {r[0].shape for r in results}
        if len(shapes) > 1:
            raise DatasetError(
                f"images in {root} have different sizes {sorted(shapes)}; "
                f"pass image_size to resize them"
            )
        images = np.stack([r[0] for r in results]).transpose(0, 3, 1, 2)  # (N, 3, H, W)
        masks = np.stack([r[1] for r in results])  # (N, H, W)
    else:
        s = image_size or 64
        images = np.zeros((0, 3, s, s), np.uint8)
        masks = np.zeros((0, s, s), bool)
    return ImageDataset(
        images=torch.from_numpy(np.ascontiguousarray(images)),
        labels=torch.tensor([it[2] for it in items], dtype=torch.int64),
        masks=torch.from_numpy(np.ascontiguousarray(masks)),
        class_names=list(class_names),
        ids=[it[3] for it in items],
    )


def load_tiny_imagenet(
    root: str | os.PathLike,
    *,
    classes: int | Sequence[str] = 10,
    train_per_class: int | None = None,
    val_from_train: int = 0,
    seed: int = 0,
    image_size: int | None = None,
) -> DatasetSplits:
    """Load Tiny ImageNet (or its 10-class subset) with bounding-box masks.

    Args:
        root: folder in Tiny ImageNet's layout (see the module docstring).
        classes: the first ``N`` sorted wnids, or an explicit list of wnids (labels follow
            their sorted order either way).
        train_per_class: keep at most this many training images per class (a seeded random
            subset), or all when ``None``.
        val_from_train: hold this many training images per class out as the val split
            (seeded); 0 uses the official validation images as val.
        seed: seed for the subsets above.
        image_size: resize images (bilinear) and masks (nearest) to this side; ``None`` keeps
            the native 64x64.

    Returns:
        :class:`DatasetSplits`; test is always the official validation images.

    Raises:
        DatasetError: missing folder, wnids or annotations, unknown wnid, unreadable image.
    """
    root = Path(root)
    all_wnids = read_wnids(root)
    wnids = _choose_classes(all_wnids, classes, root)
    names = read_words(root, wnids)
    if train_per_class is not None and int(train_per_class) < 1:
        raise DatasetError(f"train_per_class must be >= 1 or None, got {train_per_class}")
    if int(val_from_train) < 0:
        raise DatasetError(f"val_from_train must be >= 0, got {val_from_train}")
    if image_size is not None and int(image_size) < 8:
        raise DatasetError(f"image_size must be >= 8, got {image_size}")
    rng = np.random.default_rng(int(seed))

    train_items: list[tuple[Path, _Box, int, str]] = []
    held_items: list[tuple[Path, _Box, int, str]] = []
    for label, wnid in enumerate(wnids):
        folder = root / "train" / wnid
        img_dir = folder / "images"
        if not img_dir.is_dir():
            raise DatasetError(f"missing training images folder for {wnid}: {img_dir}")
        boxes = _read_train_boxes(folder / f"{wnid}_boxes.txt")
        files = sorted((p.name for p in img_dir.iterdir() if p.is_file()), key=_natural_key)
        if not files:
            raise DatasetError(f"no training images in {img_dir}")
        missing = [f for f in files if f not in boxes]
        if missing:
            raise DatasetError(
                f"missing annotations: {len(missing)} image(s) of {wnid} have "
                f"no box in {folder / f'{wnid}_boxes.txt'} (e.g. {missing[0]})"
            )
        order = rng.permutation(len(files))
        n_held = int(val_from_train)
        if n_held >= len(files):
            raise DatasetError(
                f"val_from_train={n_held} leaves no training image for {wnid} ({len(files)} images)"
            )
        held = sorted((files[i] for i in order[:n_held]), key=_natural_key)
        rest = [files[i] for i in order[n_held:]]
        if train_per_class is not None:
            rest = rest[: int(train_per_class)]
        rest = sorted(rest, key=_natural_key)
        for target, chosen in ((held_items, held), (train_items, rest)):
            target.extend(
                (img_dir / f, boxes[f], label, f"train/{wnid}/images/{f}") for f in chosen
            )

    label_of = {w: i for i, w in enumerate(wnids)}
    official = [
        (root / "val" / "images" / f, box, label_of[w], f"val/images/{f}")
        for f, w, box in _read_val_annotations(root)
        if w in label_of
    ]
    official.sort(key=lambda it: (it[2], _natural_key(it[0].name)))
    missing_val = [wnids[i] for i in range(len(wnids)) if all(it[2] != i for it in official)]
    if missing_val:
        raise DatasetError(
            f"no validation images for {missing_val} in {root / 'val' / 'val_annotations.txt'}"
        )

    size = None if image_size is None else int(image_size)
    train = _decode(train_items, names, size, root)
    test = _decode(official, names, size, root)
    val = _decode(held_items, names, size, root) if int(val_from_train) > 0 else test
    source = {
        "kind": "tiny-imagenet",
        "root": str(root),
        "wnids": list(wnids),
        "train_per_class": train_per_class,
        "val_from_train": int(val_from_train),
        "seed": int(seed),
        "image_size": size,
        "val": "held-out train images" if int(val_from_train) > 0 else "official val images",
        "test": "official val images",
    }
    return DatasetSplits(train=train, val=val, test=test, source=source)
