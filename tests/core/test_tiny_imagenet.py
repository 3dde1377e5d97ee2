"""Tests for the Tiny ImageNet loader: a generated miniature (always) and the real data (if
present). Box masks are checked exactly against boxes written / parsed by the test itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inspector.core.data import DatasetError, load_tiny_imagenet

WNIDS = ["n02000001", "n01000002", "n03000003"]  # deliberately unsorted on disk
NAMES = {"n02000001": "bee, honey bee", "n01000002": "ant", "n03000003": "cat, house cat"}


def _box_mask(x0, y0, x1, y1, size=64):
    m = np.zeros((size, size), bool)
    for y in range(y0, y1 + 1):  # a plain loop, independent of the loader's slicing
        for x in range(x0, x1 + 1):
            m[y, x] = True
    return m


def _make_tiny(root: Path, n_train: int = 4, n_val: int = 2, seed: int = 0) -> dict:
    """Write a miniature Tiny ImageNet; return {id: (label, box)} for the checks."""
    rng = np.random.default_rng(seed)
    truth = {}
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (root / "words.txt").write_text(
        "n09999999\tunused\n" + "".join(f"{w}\t{NAMES[w]}\n" for w in WNIDS)
    )
    label = {w: i for i, w in enumerate(sorted(WNIDS))}
    val_lines = []
    (root / "val" / "images").mkdir(parents=True)
    k_val = 0
    for w in WNIDS:
        img_dir = root / "train" / w / "images"
        img_dir.mkdir(parents=True)
        lines = []
        for k in range(n_train):
            name = f"{w}_{k}.JPEG"
            arr = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            im = Image.fromarray(arr)
            if k == 1:
                im = im.convert("L")  # a greyscale JPEG, as in the real data
            im.save(img_dir / name, format="JPEG")
            x0, y0 = (int(v) for v in rng.integers(0, 40, 2))
            x1, y1 = x0 + int(rng.integers(0, 24)), y0 + int(rng.integers(0, 24))
            lines.append(f"{name}\t{x0}\t{y0}\t{x1}\t{y1}")
            truth[f"train/{w}/images/{name}"] = (label[w], (x0, y0, x1, y1))
        (root / "train" / w / f"{w}_boxes.txt").write_text("\n".join(lines) + "\n")
        for _ in range(n_val):
            name = f"val_{k_val}.JPEG"
            k_val += 1
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
                root / "val" / "images" / name, format="JPEG"
            )
            x0, y0 = (int(v) for v in rng.integers(0, 30, 2))
            x1, y1 = 63, y0 + 10  # touches the right edge: inclusive corner 63
            val_lines.append(f"{name}\t{w}\t{x0}\t{y0}\t{x1}\t{y1}")
            truth[f"val/images/{name}"] = (label[w], (x0, y0, x1, y1))
    rng.shuffle(val_lines)
    (root / "val" / "val_annotations.txt").write_text("\n".join(val_lines) + "\n")
    return truth


@pytest.fixture
def tiny(tmp_path):
    truth = _make_tiny(tmp_path)
    return tmp_path, truth


def _check_against_truth(ds, truth):
    for i, ident in enumerate(ds.ids):
        lab, box = truth[ident]
        assert int(ds.labels[i]) == lab, ident
        np.testing.assert_array_equal(ds.masks[i].numpy(), _box_mask(*box), err_msg=ident)


def test_miniature_loads_with_exact_box_masks(tiny):
    root, truth = tiny
    d = load_tiny_imagenet(root, classes=3)
    assert d.class_names == ["ant", "bee", "cat"]  # sorted wnids, first name from words.txt
    assert len(d.train) == 12 and len(d.val) == 6 and len(d.test) == 6
    assert d.train.images.shape == (12, 3, 64, 64) and d.train.images.dtype == torch.uint8
    assert d.train.masks.dtype == torch.bool
    _check_against_truth(d.train, truth)
    _check_against_truth(d.test, truth)
    # val == test (the official validation images) when nothing is held out from train.
    assert d.val.ids == d.test.ids
    assert d.source["kind"] == "tiny-imagenet" and d.source["test"] == "official val images"
    assert torch.bincount(d.train.labels).tolist() == [4, 4, 4]


def test_pixels_match_the_files(tiny):
    root, _ = tiny
    d = load_tiny_imagenet(root, classes=3)
    for i in (0, 1, 5):
        ident = d.train.ids[i]
        im = Image.open(root / ident)
        ref = np.asarray(im.convert("RGB"))
        np.testing.assert_array_equal(d.train.images[i].permute(1, 2, 0).numpy(), ref)
    # The greyscale JPEG became RGB with three equal channels.
    grey = [i for i, s in enumerate(d.train.ids) if s.endswith("_1.JPEG")]
    assert grey
    img = d.train.images[grey[0]]
    assert torch.equal(img[0], img[1]) and torch.equal(img[1], img[2])


def test_classes_by_count_and_by_wnid(tiny):
    root, truth = tiny
    d = load_tiny_imagenet(root, classes=2)
    assert d.class_names == ["ant", "bee"]
    assert sorted(set(d.train.labels.tolist())) == [0, 1]
    d = load_tiny_imagenet(root, classes=["n03000003", "n01000002"])
    assert d.class_names == ["ant", "cat"]  # labels follow sorted wnid order
    assert len(d.test) == 4
    ant = [i for i, s in enumerate(d.train.ids) if "n01000002" in s]
    assert all(int(d.train.labels[i]) == 0 for i in ant)
    cat = [i for i, s in enumerate(d.train.ids) if "n03000003" in s]
    assert all(int(d.train.labels[i]) == 1 for i in cat)


def test_val_from_train_and_train_per_class(tiny):
    root, truth = tiny
    d = load_tiny_imagenet(root, classes=3, val_from_train=1, train_per_class=2, seed=5)
    assert len(d.val) == 3 and len(d.train) == 6 and len(d.test) == 6
    assert all(s.startswith("train/") for s in d.val.ids)
    assert not set(d.val.ids) & set(d.train.ids)
    _check_against_truth(d.val, truth)
    assert d.source["val"] == "held-out train images"
    again = load_tiny_imagenet(root, classes=3, val_from_train=1, train_per_class=2, seed=5)
    assert again.val.ids == d.val.ids and again.train.ids == d.train.ids


def test_without_wnids_txt_uses_train_folders(tiny):
    root, _ = tiny
    (root / "wnids.txt").unlink()
    d = load_tiny_imagenet(root, classes=3)
    assert d.class_names == ["ant", "bee", "cat"]


def test_errors(tiny, tmp_path_factory):
    root, _ = tiny
    with pytest.raises(DatasetError, match="not found"):
        load_tiny_imagenet(root / "nope")
    with pytest.raises(DatasetError, match="unknown wnid"):
        load_tiny_imagenet(root, classes=["n01000002", "n00000000"])
    with pytest.raises(DatasetError, match="classes must be"):
        load_tiny_imagenet(root, classes=4)
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(DatasetError, match="no wnids"):
        load_tiny_imagenet(empty)
    (root / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DatasetError, match="missing annotations"):
        load_tiny_imagenet(root, classes=3)


def test_missing_boxes_file(tiny):
    root, _ = tiny
    (root / "train" / "n01000002" / "n01000002_boxes.txt").unlink()
    with pytest.raises(DatasetError, match="missing annotations"):
        load_tiny_imagenet(root, classes=3)


def test_broken_image_is_a_dataset_error(tiny):
    root, _ = tiny
    (root / "train" / "n01000002" / "images" / "n01000002_0.JPEG").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="n01000002_0"):
        load_tiny_imagenet(root, classes=3)


def test_resize_option(tiny):
    root, truth = tiny
    d = load_tiny_imagenet(root, classes=3, image_size=32)
    assert d.train.images.shape[1:] == (3, 32, 32) and d.train.masks.shape[1:] == (32, 32)
    # Nearest-neighbour halving samples at output pixel centres: output i <- input 2i + 1.
    lab, box = truth[d.train.ids[0]]
    np.testing.assert_array_equal(d.train.masks[0].numpy(), _box_mask(*box)[1::2, 1::2])


# ----------------------------------------------------------------------------- real data
def _parse_boxes(path: Path) -> dict[str, tuple[int, int, int, int]]:
    out = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts:
            out[parts[0]] = tuple(int(v) for v in parts[-4:])
    return out


def test_real_tiny_imagenet_10(tiny_imagenet_10):
    d = load_tiny_imagenet(tiny_imagenet_10)
    assert len(d.train) == 5000 and len(d.test) == 500 and len(d.val) == 500
    assert d.class_names[0] == "goldfish" and d.class_names[-1] == "tarantula"
    assert sorted(set(d.train.labels.tolist())) == list(range(10))
    assert torch.bincount(d.train.labels).tolist() == [500] * 10
    assert torch.bincount(d.test.labels).tolist() == [50] * 10
    assert d.train.images.shape == (5000, 3, 64, 64)
    wnids = (tiny_imagenet_10 / "wnids.txt").read_text().split()
    # Spot-check train masks against the boxes files, parsed here independently.
    for i in (0, 777, 2500, 4999):
        ident = d.train.ids[i]
        wnid = ident.split("/")[1]
        boxes = _parse_boxes(tiny_imagenet_10 / "train" / wnid / f"{wnid}_boxes.txt")
        np.testing.assert_array_equal(d.train.masks[i].numpy(), _box_mask(*boxes[Path(ident).name]))
        assert int(d.train.labels[i]) == sorted(wnids).index(wnid)
    # And val masks / labels against val_annotations.txt.
    ann = {}
    for line in (tiny_imagenet_10 / "val" / "val_annotations.txt").read_text().splitlines():
        f = line.split()
        ann[f[0]] = (f[1], tuple(int(v) for v in f[2:6]))
    for i in (0, 123, 499):
        wnid, box = ann[Path(d.test.ids[i]).name]
        assert int(d.test.labels[i]) == sorted(wnids).index(wnid)
        np.testing.assert_array_equal(d.test.masks[i].numpy(), _box_mask(*box))
