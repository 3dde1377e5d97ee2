"""An image opened from a Tiny ImageNet folder brings its box mask and true label
(core/data/ground_truth.py): generated folders of the real layout, boxes written by the test and
masks built by a plain loop; the real 10-class subset when it is present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_tiny_imagenet import NAMES, WNIDS, _box_mask, _make_tiny

from inspector.core.data import DatasetError
from inspector.core.data.ground_truth import image_ground_truth

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "tiny-imagenet-10"


def test_train_and_val_images_bring_their_box_and_label(tmp_path):
    truth = _make_tiny(tmp_path)
    sorted_wnids = sorted(WNIDS)
    for rel, (label, box) in truth.items():
        gt = image_ground_truth(tmp_path / rel, (64, 64))
        assert gt is not None, rel
        assert gt.box == box
        np.testing.assert_array_equal(gt.mask, _box_mask(*box))
        assert gt.wnid == sorted_wnids[label]
        assert gt.name == NAMES[gt.wnid].split(",")[0]
        # Matched to a model's classes by name, by wnid, or by position among 3 classes.
        names = [NAMES[w].split(",")[0] for w in sorted_wnids]
        assert gt.class_index(names) == label
        assert gt.class_index(list(reversed(sorted_wnids))) == 2 - label
        assert gt.class_index([f"class {i}" for i in range(3)]) == label
        assert gt.class_index([str(i) for i in range(3)]) == label
        assert gt.class_index([f"class {i}" for i in range(5)]) is None
        # Named classes of another dataset: no label, never one picked by position.
        assert gt.class_index(["circle", "square", "ring"]) is None
    assert gt.annotation.name == "val_annotations.txt" or gt.annotation.name.endswith("_boxes.txt")


def test_other_images_have_none_and_bad_annotations_say_where(tmp_path):
    _make_tiny(tmp_path)
    other = tmp_path / "elsewhere" / "images"
    other.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(other / "x.png")
    assert image_ground_truth(other / "x.png", (8, 8)) is None
    extra = tmp_path / "val" / "images" / "val_999.JPEG"  # not listed
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(extra, format="JPEG")
    assert image_ground_truth(extra, (64, 64)) is None
    w = WNIDS[0]
    (tmp_path / "train" / w / f"{w}_boxes.txt").write_text(f"{w}_0.JPEG\t1\tx\t3\t4\n")
    with pytest.raises(DatasetError, match=f"{w}_boxes.txt:1"):
        image_ground_truth(tmp_path / "train" / w / "images" / f"{w}_0.JPEG", (64, 64))


@pytest.mark.skipif(not REAL.is_dir(), reason="real Tiny ImageNet subset absent")
def test_real_subset():
    line = (REAL / "val" / "val_annotations.txt").read_text().splitlines()[0].split("\t")
    gt = image_ground_truth(REAL / "val" / "images" / line[0], (64, 64))
    assert gt is not None and gt.wnid == line[1]
    x0, y0, x1, y1 = (int(v) for v in line[2:])
    assert gt.mask.sum() == (min(x1, 63) - x0 + 1) * (min(y1, 63) - y0 + 1)
    wnids = sorted(d.name for d in (REAL / "train").iterdir() if d.is_dir())
    assert gt.class_index([f"class {i}" for i in range(len(wnids))]) == wnids.index(line[1])
    train = sorted((REAL / "train" / wnids[0] / "images").iterdir())[0]
    gt = image_ground_truth(train, (64, 64))
    assert gt is not None and gt.wnid == wnids[0] and gt.mask.any()
