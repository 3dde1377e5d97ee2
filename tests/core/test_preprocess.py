"""Input preprocessing against float64 re-computations, torchvision, and hand-built crops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from inspector.core.config import Preprocess
from inspector.core.preprocess import (
    PreprocessError,
    crop_box,
    denormalise,
    normalise_uint8,
    prepare_image,
    to_tensor,
)

RNG = np.random.default_rng(1234)


def _smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth colourful (H, W, 3) uint8 image (no bicubic overshoot clipping)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    chans = []
    for _ in range(3):
        a, b, c = rng.uniform(0.5, 3.0, 3)
        chans.append(0.5 + 0.35 * np.sin(a * xx * math.pi + b * yy * 2 + c))
    return np.clip(np.rint(np.stack(chans, -1) * 255), 0, 255).astype(np.uint8)


# ---- an independent float64 resampler: separable filtering with an antialiased kernel ----
def _kernel(kind: str, x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    if kind == "bilinear":  # triangle, support 1
        return np.where(x < 1, 1 - x, 0.0)
    a = -0.5  # Keys' cubic convolution as PIL uses it, support 2
    return np.where(
        x < 1,
        ((a + 2) * x - (a + 3)) * x * x + 1,
        np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0),
    )


def _weights(n_in: int, n_out: int, kind: str) -> np.ndarray:
    """(n_out, n_in) matrix: output pixel centres mapped back onto the input grid; when
    shrinking, the kernel is stretched by the scale (antialiasing)."""
    scale = n_in / n_out
    stretch = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale  # in input pixel units
    src = np.arange(n_in) + 0.5
    w = _kernel(kind, (src[None, :] - centres[:, None]) / stretch)
    return w / w.sum(axis=1, keepdims=True)


def _reference_resize(image: np.ndarray, h: int, w: int, kind: str) -> np.ndarray:
    img = image.astype(np.float64)
    out = np.einsum(
        "yi,ijc,xj->yxc", _weights(image.shape[0], h, kind), img, _weights(image.shape[1], w, kind)
    )
    return np.clip(np.rint(out), 0, 255)


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


@pytest.mark.parametrize("kind", ["bilinear", "bicubic"])
@pytest.mark.parametrize("shape", [(30, 50), (50, 30), (9, 13)])  # shrink both, grow both
def test_resize_matches_float64_resampling(kind, shape):
    image = _smooth_image(*shape, seed=shape[0])
    pre = Preprocess(image_size=16, policy="resize", interpolation=kind)
    out = prepare_image(image, pre)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    # PIL works in fixed point with an 8-bit intermediate between the two passes: within 1.
    assert _max_diff(out, _reference_resize(image, 16, 16, kind)) <= 1.0


@pytest.mark.parametrize("shape", [(40, 60), (60, 40), (23, 77)])
def test_resize_crop_matches_float64_and_takes_the_centre(shape):
    h, w = shape
    image = _smooth_image(h, w, seed=w)
    pre = Preprocess(image_size=16, policy="resize_crop")  # R = round(16 / 0.875) = 18
    out = prepare_image(image, pre)
    assert out.shape == (16, 16, 3)
    # Short side to 18, long side scaled (truncated), then the central 16 x 16.
    short, long = min(h, w), max(h, w)
    rl = int(18 * long / short)
    h2, w2 = (18, rl) if h <= w else (rl, 18)
    top, left = round((h2 - 16) / 2), round((w2 - 16) / 2)
    # Centred: the margins cut on either side differ by at most one pixel.
    assert abs((h2 - 16 - top) - top) <= 1 and abs((w2 - 16 - left) - left) <= 1
    ref = _reference_resize(image, h2, w2, "bilinear")[top : top + 16, left : left + 16]
    assert _max_diff(out, ref) <= 1.0
    assert crop_box(h, w, pre) == (top, left, top + 16, left + 16)


def test_resize_crop_equals_torchvision_pipeline():
    """A second implementation: torchvision's Resize + CenterCrop on PIL images."""
    from PIL import Image
    from torchvision import transforms
    from torchvision.transforms import InterpolationMode

    for shape, kind in [((37, 101), "bicubic"), ((120, 45), "bilinear"), ((64, 64), "bicubic")]:
        image = RNG.integers(0, 256, (*shape, 3), dtype=np.uint8)
        pre = Preprocess(image_size=24, policy="resize_crop", resize_size=28, interpolation=kind)
        tv = transforms.Compose(
            [
                transforms.Resize(28, interpolation=InterpolationMode(kind)),
                transforms.CenterCrop(24),
            ]
        )
        expected = np.asarray(tv(Image.fromarray(image)))
        np.testing.assert_array_equal(prepare_image(image, pre), expected)


def test_centre_crop_without_resampling_is_the_exact_middle():
    # Short side already equals resize_size, so the resize is the identity and the output
    # must be exactly the central window (pixels encode their own coordinates).
    pre = Preprocess(image_size=16, policy="resize_crop", resize_size=18)
    rows, cols = np.meshgrid(np.arange(18), np.arange(30), indexing="ij")
    wide = np.stack([rows * 7, cols * 5, (rows + cols) % 256], -1).astype(np.uint8)  # 18 x 30
    out = prepare_image(wide, pre)
    # 2 rows to drop -> 1 above, 1 below; 14 columns -> 7 left, 7 right.
    np.testing.assert_array_equal(out, wide[1:17, 7:23])
    tall = np.ascontiguousarray(wide.transpose(1, 0, 2))  # 30 x 18
    np.testing.assert_array_equal(prepare_image(tall, pre), tall[7:23, 1:17])


def test_resize_of_right_sized_image_is_identity_and_returns_a_copy():
    image = RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    out = prepare_image(image, Preprocess(image_size=16))
    np.testing.assert_array_equal(out, image)
    out[0, 0, 0] ^= 1
    assert out[0, 0, 0] != image[0, 0, 0]


def _reference_normalise(images_hwc: np.ndarray, pre: Preprocess) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float64 of (x / 255 - mean) / std."""
    x = images_hwc.astype(np.float64) / 255.0
    x = (x - np.array(pre.mean)) / np.array(pre.std)
    return x.transpose(0, 3, 1, 2)


def test_to_tensor_matches_float64_normalisation():
    pre = Preprocess(image_size=16, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    batch = RNG.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    batch[0, 0, 0] = (0, 255, 128)  # the extremes
    ref = _reference_normalise(batch, pre)

    single = to_tensor(batch[1], pre)
    assert single.shape == (1, 3, 16, 16) and single.dtype == torch.float32
    np.testing.assert_allclose(single.numpy(), ref[1:2], atol=2e-6, rtol=0)

    many = to_tensor(batch, pre)
    np.testing.assert_allclose(many.numpy(), ref, atol=2e-6, rtol=0)

    chw = torch.from_numpy(batch).permute(0, 3, 1, 2)  # (N, 3, H, W) uint8
    np.testing.assert_allclose(to_tensor(chw, pre).numpy(), ref, atol=2e-6, rtol=0)
    np.testing.assert_allclose(
        normalise_uint8(chw, pre.mean, pre.std).numpy(), ref, atol=2e-6, rtol=0
    )
    np.testing.assert_allclose(to_tensor(chw[2], pre).numpy(), ref[2:3], atol=2e-6, rtol=0)


def test_to_tensor_applies_geometry_for_every_input_kind():
    pre = Preprocess(image_size=16, policy="resize_crop", mean=(0.2, 0.3, 0.4), std=(1, 2, 3))
    batch = np.stack([_smooth_image(20, 28, seed=s) for s in range(3)])  # (3, 20, 28, 3)
    prepared = np.stack([prepare_image(im, pre) for im in batch])
    ref = _reference_normalise(prepared, pre)
    np.testing.assert_allclose(to_tensor(batch, pre).numpy(), ref, atol=2e-6, rtol=0)
    chw = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()
    np.testing.assert_allclose(to_tensor(chw, pre).numpy(), ref, atol=2e-6, rtol=0)


def test_denormalise_inverts_to_tensor_exactly():
    pre = Preprocess(image_size=16, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    image = RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    x = to_tensor(image, pre)
    np.testing.assert_array_equal(denormalise(x, pre)[0], image)
    np.testing.assert_array_equal(denormalise(x[0], pre), image)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_normalise_uint8_on_gpu():  # pragma: no cover - GPU machines only
    batch = torch.from_numpy(RNG.integers(0, 256, (2, 3, 8, 8), dtype=np.uint8))
    cpu = normalise_uint8(batch, (0.1, 0.2, 0.3), (0.4, 0.5, 0.6))
    gpu = normalise_uint8(batch.cuda(), (0.1, 0.2, 0.3), (0.4, 0.5, 0.6))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu)


def test_bad_input_gets_clear_errors():
    pre = Preprocess(image_size=16)
    with pytest.raises(PreprocessError, match="uint8"):
        prepare_image(np.zeros((16, 16, 3), np.float32), pre)
    with pytest.raises(PreprocessError, match=r"\(H, W, 3\).*\(16, 16\)"):
        prepare_image(np.zeros((16, 16), np.uint8), pre)
    with pytest.raises(PreprocessError, match="numpy array"):
        prepare_image([[0, 0, 0]], pre)
    with pytest.raises(PreprocessError, match="resize_size 12 is smaller"):
        prepare_image(
            np.zeros((20, 20, 3), np.uint8),
            Preprocess(image_size=16, policy="resize_crop", resize_size=12),
        )
    with pytest.raises(PreprocessError, match="unknown resize policy"):
        prepare_image(np.zeros((20, 20, 3), np.uint8), Preprocess(image_size=16, policy="pad"))
    with pytest.raises(PreprocessError, match="uint8 tensor"):
        normalise_uint8(torch.zeros(1, 3, 4, 4), (0.5,) * 3, (0.5,) * 3)
    with pytest.raises(PreprocessError, match="3 channels but 1 means"):
        normalise_uint8(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), (0.5,), (0.5,))
    with pytest.raises(PreprocessError, match="std must be positive"):
        normalise_uint8(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), (0.5,) * 3, (0.5, 0, 1))
    with pytest.raises(PreprocessError, match=r"\(N, 3, H, W\)"):
        to_tensor(torch.zeros(2, 4, 4, 3, dtype=torch.uint8), pre)
