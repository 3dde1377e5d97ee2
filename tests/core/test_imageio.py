"""Tests for inspector.core.imageio: every file type and mode becomes (H, W, 3) uint8 RGB."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from inspector.core.imageio import IMAGE_SUFFIXES, ImageReadError, read_image, read_mask


def _rgb(h: int = 6, w: int = 5) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".tiff", ".webp"])
def test_lossless_rgb_round_trip(tmp_path, suffix):
    arr = _rgb()
    path = tmp_path / f"a{suffix}"
    kwargs = {"lossless": True} if suffix == ".webp" else {}
    Image.fromarray(arr).save(path, **kwargs)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (6, 5, 3)
    np.testing.assert_array_equal(out, arr)


def test_jpeg_is_close(tmp_path):
    arr = np.full((16, 16, 3), (200, 40, 90), dtype=np.uint8)
    path = tmp_path / "a.JPEG"  # upper-case suffix, as in Tiny ImageNet
    Image.fromarray(arr).save(path, format="JPEG", quality=95)
    out = read_image(path)
    assert out.shape == (16, 16, 3)
    assert np.abs(out.astype(int) - arr.astype(int)).max() <= 4


def test_greyscale_is_replicated(tmp_path):
    g = np.arange(20, dtype=np.uint8).reshape(4, 5) * 12
    path = tmp_path / "g.png"
    Image.fromarray(g).save(path)
    out = read_image(path)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], g)


def test_rgba_composited_over_white(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)  # opaque: unchanged
    rgba[0, 1] = (10, 20, 30, 0)  # transparent: white
    rgba[1, 0] = (0, 0, 0, 128)  # half: 255 * (1 - 128/255) = 127
    rgba[1, 1] = (200, 100, 0, 51)  # a = 0.2: 0.2 * c + 0.8 * 255
    path = tmp_path / "a.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    out = read_image(path).astype(int)
    assert out[0, 0].tolist() == [10, 20, 30]
    assert out[0, 1].tolist() == [255, 255, 255]
    assert out[1, 0].tolist() == [127, 127, 127]
    assert out[1, 1].tolist() == [round(0.2 * 200 + 204), round(0.2 * 100 + 204), 204]


def test_palette_image(tmp_path):
    im = Image.new("P", (3, 2))
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    im.putdata([0, 1, 2, 2, 1, 0])
    path = tmp_path / "p.png"
    im.save(path)
    out = read_image(path)
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[0, 1].tolist() == [0, 255, 0]
    assert out[0, 2].tolist() == [0, 0, 255]
    assert out[1, 2].tolist() == [255, 0, 0]


def test_sixteen_bit_scaled(tmp_path):
    v = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / "d.png"
    Image.fromarray(v).save(path)  # mode I;16
    out = read_image(path)
    expected = np.rint(v.astype(np.float64) * 255 / 65535).astype(np.uint8)  # 0, 1, 128, 255
    np.testing.assert_array_equal(out[..., 0], expected)
    np.testing.assert_array_equal(out[..., 2], expected)


def test_thirty_two_bit_int_scaled(tmp_path):
    v = np.array([[0, 65535, 100000]], dtype=np.int32)
    path = tmp_path / "i.tif"
    Image.fromarray(v, mode="I").save(path)
    out = read_image(path)
    assert out[0, :, 0].tolist() == [0, 255, 255]  # values above 65535 clip


def test_errors(tmp_path):
    with pytest.raises(ImageReadError, match="not found"):
        read_image(tmp_path / "missing.png")
    txt = tmp_path / "a.txt"
    txt.write_text("hello")
    with pytest.raises(ImageReadError, match="unsupported"):
        read_image(txt)
    broken = tmp_path / "b.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ImageReadError):
        read_image(broken)
    # Truncated JPEG: a real header, half the data.
    good = tmp_path / "c.jpg"
    Image.fromarray(_rgb(64, 64)).save(good)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(ImageReadError):
        read_image(cut)
    with pytest.raises(ImageReadError, match="not a file"):
        read_image(tmp_path)
    assert issubclass(ImageReadError, ValueError)


def test_suffixes():
    for s in (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"):
        assert s in IMAGE_SUFFIXES


def test_read_mask_any_nonzero(tmp_path):
    m = np.zeros((4, 6, 3), dtype=np.uint8)
    m[1, 2] = (0, 0, 1)  # only blue non-zero still counts
    m[3, 5] = (255, 255, 255)
    path = tmp_path / "m.png"
    Image.fromarray(m).save(path)
    out = read_mask(path)
    expected = np.zeros((4, 6), bool)
    expected[1, 2] = expected[3, 5] = True
    assert out.dtype == bool
    np.testing.assert_array_equal(out, expected)


def test_read_mask_rgba_ignores_alpha(tmp_path):
    m = np.zeros((2, 2, 4), dtype=np.uint8)
    m[..., 3] = 255  # opaque black everywhere
    m[0, 1, :3] = 9
    path = tmp_path / "m.png"
    Image.fromarray(m, mode="RGBA").save(path)
    assert read_mask(path).tolist() == [[False, True], [False, False]]


def test_read_mask_nearest_resize(tmp_path):
    # A 4x4 mask whose top-left 2x2 block is on; upscaled x2 by nearest -> top-left 4x4 block.
    m = np.zeros((4, 4), dtype=np.uint8)
    m[:2, :2] = 7
    path = tmp_path / "m.bmp"
    Image.fromarray(m).save(path)
    out = read_mask(path, size=(8, 8))
    expected = np.zeros((8, 8), bool)
    expected[:4, :4] = True
    np.testing.assert_array_equal(out, expected)
    # Non-square target: (H, W) order.
    assert read_mask(path, size=(8, 2)).shape == (8, 2)
    with pytest.raises(ImageReadError, match="size"):
        read_mask(path, size=(0, 3))
