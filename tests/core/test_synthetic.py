"""Tests for the synthetic shape dataset: determinism, balance, and exact masks.

The masks are checked against an independent rasteriser: PIL's ImageDraw polygon fill of the
shape outline (and an analytic disc test for circles and rings), placed from the geometry that
``render_sample`` reports, and against the object-free background render.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from inspector.core.data.synthetic import (
    SYNTHETIC_CLASSES,
    make_synthetic,
    render_sample,
    shape_outline,
)


@pytest.fixture(scope="module")
def small():
    return make_synthetic(seed=3, train_per_class=6, val_per_class=2, test_per_class=3)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / max((a | b).sum(), 1)


def _pil_reference(label: int, centre, scale: float, angle: float, size: int) -> np.ndarray:
    """Rasterise the shape's outline polygons with PIL at 8x supersampling (even-odd: XOR of
    the rings); a pixel is in the shape when at least half of its 64 sub-pixels are."""
    k = 8
    fine = np.zeros((size * k, size * k), bool)
    for poly in shape_outline(label, centre, scale, angle):
        im = Image.new("L", (size * k, size * k), 0)
        # PIL puts sub-pixel (i, j)'s centre at integer (j, i); in pixel units that centre is
        # ((j + 0.5) / k, (i + 0.5) / k), hence X = k x - 0.5.
        ImageDraw.Draw(im).polygon([(k * x - 0.5, k * y - 0.5) for x, y in poly], fill=1)
        fine ^= np.asarray(im, dtype=bool)
    coverage = fine.reshape(size, k, size, k).mean(axis=(1, 3))
    return coverage >= 0.5


def _disc(centre, radius: float, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    return (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius**2


def test_class_names():
    assert len(SYNTHETIC_CLASSES) == 10
    assert len(set(SYNTHETIC_CLASSES)) == 10
    d = make_synthetic(train_per_class=1, val_per_class=1, test_per_class=1)
    assert d.class_names == list(SYNTHETIC_CLASSES)


def test_shapes_dtypes_balance_ids(small):
    for split, per in (("train", 6), ("val", 2), ("test", 3)):
        ds = small.split(split)
        n = 10 * per
        assert ds.images.shape == (n, 3, 64, 64) and ds.images.dtype == torch.uint8
        assert ds.labels.shape == (n,) and ds.labels.dtype == torch.int64
        assert ds.masks.shape == (n, 64, 64) and ds.masks.dtype == torch.bool
        assert torch.bincount(ds.labels, minlength=10).tolist() == [per] * 10
        assert ds.ids[0] == f"synthetic/{split}/00000"
        assert len(set(ds.ids)) == n
        # Every mask is non-empty and a sizeable part of the image, never all of it.
        area = ds.masks.flatten(1).sum(1)
        assert area.min() > 30 and area.max() < 64 * 64 * 0.6
    assert small.source["kind"] == "synthetic" and small.source["seed"] == 3


def test_determinism():
    a = make_synthetic(seed=7, train_per_class=3, val_per_class=1, test_per_class=1)
    b = make_synthetic(seed=7, train_per_class=3, val_per_class=1, test_per_class=1)
    c = make_synthetic(seed=8, train_per_class=3, val_per_class=1, test_per_class=1)
    for split in ("train", "val", "test"):
        assert torch.equal(a.split(split).images, b.split(split).images)
        assert torch.equal(a.split(split).masks, b.split(split).masks)
        assert torch.equal(a.split(split).labels, b.split(split).labels)
        assert not torch.equal(a.split(split).images, c.split(split).images)
    # Splits come from independent seeds: a different train size leaves val unchanged.
    d = make_synthetic(seed=7, train_per_class=5, val_per_class=1, test_per_class=1)
    assert torch.equal(a.val.images, d.val.images)
    assert not torch.equal(a.train.images[:30], a.val.images[:10].repeat(3, 1, 1, 1))


def test_render_sample_deterministic():
    s1 = render_sample(np.random.default_rng(5), 3)
    s2 = render_sample(np.random.default_rng(5), 3)
    np.testing.assert_array_equal(s1.image, s2.image)
    np.testing.assert_array_equal(s1.mask, s2.mask)
    assert s1.class_name == "star"


@pytest.mark.parametrize("label", range(10))
def test_mask_matches_independent_rasterisation(label):
    rng = np.random.default_rng(100 + label)
    for _ in range(6):
        s = render_sample(rng, label)
        assert s.image.shape == (64, 64, 3) and s.image.dtype == np.uint8
        assert s.mask.shape == (64, 64) and s.mask.dtype == bool
        ref = _pil_reference(label, s.centre, s.scale, s.angle, 64)
        # The mask is what stays visible: never under an occluder.
        assert not (s.mask & s.occluder).any()
        # Full shape = visible mask + the occluded part of the reference.
        assert _iou(s.mask | (s.occluder & ref), ref) > 0.9, SYNTHETIC_CLASSES[label]
        # The whole object lies inside its bounding disc of radius `scale`.
        assert not (s.mask & ~_disc(s.centre, s.scale + 0.8, 64)).any()


def test_circle_and_ring_against_analytic_discs():
    rng = np.random.default_rng(0)
    for _ in range(5):
        s = render_sample(rng, SYNTHETIC_CLASSES.index("circle"))
        ref = _disc(s.centre, s.scale, 64)
        assert _iou(s.mask | (s.occluder & ref), ref) > 0.97
        s = render_sample(rng, SYNTHETIC_CLASSES.index("ring"))
        outer = _disc(s.centre, s.scale, 64)
        hole = _disc(s.centre, 0.4 * s.scale, 64)  # the hole is well inside the inner radius
        assert not (s.mask & hole).any()
        assert _iou(s.mask | (s.occluder & outer), outer) < 0.8  # the ring has a hole


def test_mask_is_exactly_where_the_object_changed_the_image():
    rng = np.random.default_rng(1)
    changed_share = []
    for label in range(10):
        for _ in range(3):
            s = render_sample(rng, label)
            # Outside the mask the image is bit-identical to the scene without the object.
            np.testing.assert_array_equal(s.image[~s.mask], s.background[~s.mask])
            diff = np.abs(s.image.astype(int) - s.background.astype(int)).max(axis=2)
            changed_share.append((diff[s.mask] > 0).mean())
    # Inside the mask the object's pixels differ from the background (colours are random,
    # so an occasional pixel can coincide; overall almost all differ).
    assert np.mean(changed_share) > 0.95
    assert min(changed_share) > 0.5


def test_object_pixels_differ_from_surroundings(small):
    # Mean colour inside the mask vs. the whole image, averaged over the dataset.
    imgs = small.train.images.float()  # (N, 3, H, W)
    masks = small.train.masks
    diffs = []
    for img, m in zip(imgs, masks, strict=True):
        inside = img[:, m].mean(1)
        outside = img[:, ~m].mean(1)
        diffs.append((inside - outside).abs().max().item())
    assert np.median(diffs) > 10


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        make_synthetic(num_classes=11)
    with pytest.raises(ValueError, match="image_size"):
        make_synthetic(image_size=8, train_per_class=1)
    with pytest.raises(ValueError, match="train_per_class"):
        make_synthetic(train_per_class=-1)


def test_other_sizes_and_fewer_classes():
    d = make_synthetic(
        seed=1, train_per_class=2, val_per_class=1, test_per_class=1, image_size=32, num_classes=4
    )
    assert d.train.images.shape == (8, 3, 32, 32)
    assert d.class_names == list(SYNTHETIC_CLASSES[:4])
    assert int(d.train.labels.max()) == 3


def test_object_is_lighter_than_what_it_covers():
    # Figure over ground: the object's mean luminance (BT.601) exceeds that of the background
    # pixels it hides, rendered without it, by a clear margin in almost every image.
    rng = np.random.default_rng(9)
    lum = np.array([0.299, 0.587, 0.114])
    gaps = []
    for label in range(10):
        for _ in range(4):
            s = render_sample(rng, label)
            obj = s.image[s.mask].astype(float) @ lum
            under = s.background[s.mask].astype(float) @ lum
            gaps.append(obj.mean() - under.mean())
    assert np.mean(np.array(gaps) > 20) > 0.9
    assert np.median(gaps) > 50


def test_result_does_not_depend_on_thread_count(monkeypatch):
    kwargs = {"seed": 4, "train_per_class": 20, "val_per_class": 1, "test_per_class": 1}
    many = make_synthetic(**kwargs)  # 200 train images: 4 chunks, rendered on threads
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    one = make_synthetic(**kwargs)
    assert torch.equal(many.train.images, one.train.images)
    assert torch.equal(many.train.masks, one.train.masks)
