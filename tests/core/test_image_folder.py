"""Tests for the class-per-sub-folder loader and the load_dataset dispatcher."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inspector.core.data import (
    SYNTHETIC_CLASSES,
    DatasetError,
    DatasetSplits,
    ImageDataset,
    load_dataset,
    load_image_folder,
)

CLASSES = {"zebra": 10, "apple": 10, "mango": 5}  # unsorted on purpose; labels: sorted names


def _colour(cls: str, k: int) -> tuple[int, int, int]:
    return (sorted(CLASSES).index(cls) * 80, k * 9, 200)


def _make_folder(root: Path, masks: Path | None = None) -> None:
    for cls, n in CLASSES.items():
        for k in range(n):
            sub = root / cls / ("nested" if k % 4 == 0 else "")
            sub.mkdir(parents=True, exist_ok=True)
            suffix = ".png" if k % 2 else ".jpg"
            # A flat colour image (JPEG-safe), 40x30, so resizing is exercised.
            arr = np.zeros((30, 40, 3), np.uint8)
            arr[:] = _colour(cls, k)
            Image.fromarray(arr).save(sub / f"img{k:02d}{suffix}")
            if masks is not None:
                msub = masks / cls / ("nested" if k % 4 == 0 else "")
                msub.mkdir(parents=True, exist_ok=True)
                m = np.zeros((30, 40), np.uint8)
                m[: 3 + k, :20] = 255  # top-left block, height depends on k
                Image.fromarray(m).save(msub / f"img{k:02d}.png")  # masks are always PNG


def test_labels_sizes_and_pixels(tmp_path):
    _make_folder(tmp_path)
    d = load_image_folder(tmp_path, image_size=16, val_fraction=0.2, test_fraction=0.2, seed=1)
    assert isinstance(d, DatasetSplits) and isinstance(d.train, ImageDataset)
    assert d.class_names == ["apple", "mango", "zebra"]
    total = len(d.train) + len(d.val) + len(d.test)
    assert total == 25
    assert d.train.images.shape[1:] == (3, 16, 16) and d.train.images.dtype == torch.uint8
    assert d.train.masks is None
    # Stratified: 2 + 1 + 2 per split for val and test.
    for ds in (d.val, d.test):
        assert torch.bincount(ds.labels, minlength=3).tolist() == [2, 1, 2]
    # Every image keeps its label and its flat colour after bilinear resizing.
    for ds in (d.train, d.val, d.test):
        for i, ident in enumerate(ds.ids):
            cls = ident.split("/")[0]
            assert int(ds.labels[i]) == sorted(CLASSES).index(cls)
            k = int(Path(ident).stem[3:])
            px = ds.images[i].permute(1, 2, 0).reshape(-1, 3).float().mean(0)
            assert np.allclose(px.numpy(), _colour(cls, k), atol=3)
    # No image in two splits.
    ids = d.train.ids + d.val.ids + d.test.ids
    assert len(set(ids)) == 25


def test_split_is_seeded(tmp_path):
    _make_folder(tmp_path)
    a = load_image_folder(tmp_path, seed=3)
    b = load_image_folder(tmp_path, seed=3)
    c = load_image_folder(tmp_path, seed=4)
    assert a.val.ids == b.val.ids and a.test.ids == b.test.ids
    assert (a.val.ids, a.test.ids) != (c.val.ids, c.test.ids)
    assert a.source["kind"] == "image-folder"


def test_masks_nearest_resized(tmp_path):
    _make_folder(tmp_path / "img", masks=tmp_path / "msk")
    d = load_image_folder(
        tmp_path / "img", mask_root=tmp_path / "msk", image_size=20, val_fraction=0, test_fraction=0
    )
    assert d.train.masks is not None and d.train.masks.dtype == torch.bool
    for i, ident in enumerate(d.train.ids):
        k = int(Path(ident).stem[3:])
        # Reference: the 30x40 mask, nearest-resized to 20x20 by sampling at output pixel
        # centres: row i <- floor((i + 0.5) * 30 / 20), column j <- floor((j + 0.5) * 40 / 20).
        full = np.zeros((30, 40), bool)
        full[: 3 + k, :20] = True
        rows = np.floor((np.arange(20) + 0.5) * 30 / 20).astype(int)
        cols = np.floor((np.arange(20) + 0.5) * 40 / 20).astype(int)
        np.testing.assert_array_equal(d.train.masks[i].numpy(), full[rows][:, cols])


def test_missing_mask_and_errors(tmp_path):
    _make_folder(tmp_path / "img", masks=tmp_path / "msk")
    (tmp_path / "msk" / "apple" / "img01.png").unlink()
    with pytest.raises(DatasetError, match="no mask"):
        load_image_folder(tmp_path / "img", mask_root=tmp_path / "msk")
    with pytest.raises(DatasetError, match="not found"):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(DatasetError, match="fraction"):
        load_image_folder(tmp_path / "img", val_fraction=0.6, test_fraction=0.5)
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no class sub-folders"):
        load_image_folder(tmp_path / "empty")
    (tmp_path / "img" / "apple" / "img03.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="img03"):
        load_image_folder(tmp_path / "img")


def test_load_dataset_dispatch(tmp_path):
    d = load_dataset(
        "synthetic", classes=3, seed=2, train_per_class=2, val_per_class=1, test_per_class=1
    )
    assert d.source["kind"] == "synthetic" and d.class_names == list(SYNTHETIC_CLASSES[:3])
    assert len(d.train) == 6
    with pytest.raises(DatasetError, match="1..10"):
        load_dataset("synthetic", classes=11)
    with pytest.raises(DatasetError, match="number"):
        load_dataset("synthetic", classes=["circle"])
    _make_folder(tmp_path / "folder")
    d = load_dataset(tmp_path / "folder", image_size=8)
    assert d.source["kind"] == "image-folder" and d.train.images.shape[-1] == 8
    # A Tiny ImageNet folder is recognised by train/<wnid>/images even without wnids.txt.
    tin = tmp_path / "tin"
    (tin / "train" / "n01" / "images").mkdir(parents=True)
    Image.new("RGB", (64, 64)).save(tin / "train" / "n01" / "images" / "n01_0.JPEG")
    (tin / "train" / "n01" / "n01_boxes.txt").write_text("n01_0.JPEG\t1\t2\t3\t4\n")
    (tin / "val" / "images").mkdir(parents=True)
    Image.new("RGB", (64, 64)).save(tin / "val" / "images" / "val_0.JPEG")
    (tin / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn01\t0\t0\t9\t9\n")
    d = load_dataset(tin, classes=1)
    assert d.source["kind"] == "tiny-imagenet" and len(d.train) == 1
    assert int(d.train.masks[0].sum()) == 3 * 3
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset(tmp_path / "nothing-here")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DatasetError, match="file"):
        load_dataset(tmp_path / "file.txt")
