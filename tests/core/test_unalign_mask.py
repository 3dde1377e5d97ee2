"""``unalign_mask``: a mask drawn on the display back onto the original image, so that it
outlives the model (the window re-aligns it for the next checkpoint)."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.core.config import Preprocess
from inspector.core.preprocess import align_mask, crop_box, resized_size, unalign_mask


def _disk(h: int, w: int, y: float, x: float, r: float) -> np.ndarray:
    rows, cols = np.mgrid[:h, :w]
    return (rows - y) ** 2 + (cols - x) ** 2 <= r * r


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_an_image_already_at_size_round_trips_exactly():
    pre = Preprocess(image_size=64, policy="resize")
    m = _disk(64, 64, 20, 30, 9)
    np.testing.assert_array_equal(unalign_mask(m, (64, 64), pre), m)
    np.testing.assert_array_equal(align_mask(unalign_mask(m, (64, 64), pre), (64, 64), pre), m)


def test_a_block_on_a_half_size_display_is_the_doubled_block():
    # 128 -> 64 by "resize": display rows/cols 16..47 are original 32..95, the bilinear 2x
    # upsampling puts the 0.5 crossing exactly between 31 and 32 (and 95 and 96).
    pre = Preprocess(image_size=64, policy="resize")
    m = np.zeros((64, 64), bool)
    m[16:48, 16:48] = True
    want = np.zeros((128, 128), bool)
    want[32:96, 32:96] = True
    np.testing.assert_array_equal(unalign_mask(m, (128, 128), pre), want)


@pytest.mark.parametrize("shape", [(300, 200), (180, 240), (97, 131)])
def test_resize_crop_puts_the_mask_back_where_the_crop_took_it(shape):
    pre = Preprocess(image_size=64, policy="resize_crop", resize_size=72)
    h, w = shape
    display = _disk(64, 64, 30, 25, 14)
    original = unalign_mask(display, shape, pre)
    assert original.shape == shape
    # Nothing outside the crop's footprint in the original image.
    h2, w2 = resized_size(h, w, pre)
    top, left, bottom, right = crop_box(h, w, pre)
    rows = np.arange(h)[:, None] * h2 / h
    cols = np.arange(w)[None, :] * w2 / w
    outside = (rows < top - 1) | (rows > bottom + 1) | (cols < left - 1) | (cols > right + 1)
    assert not original[outside].any()
    # And aligned again it is the drawn mask, up to the resampled edge.
    again = align_mask(original, shape, pre)
    assert _iou(again, display) > 0.9
    assert (again ^ display).sum() <= 4 * np.pi * 14  # at most a couple of edge rings


def test_a_display_mask_of_another_size_is_refused():
    with pytest.raises(ValueError, match="display mask"):
        unalign_mask(np.zeros((32, 32), bool), (64, 64), Preprocess(image_size=64))
