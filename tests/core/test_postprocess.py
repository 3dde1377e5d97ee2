"""Post-processing: upsampling, seed 003's smoothing, normalisation, colormaps, overlay."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from inspector.core import postprocess as P


def ref_bilinear(m: np.ndarray, H: int, W: int) -> np.ndarray:
    """Half-pixel (align_corners=False) bilinear resize written out with loops, float64."""
    gh, gw = m.shape
    out = np.empty((H, W))
    for y in range(H):
        sy = min(max((y + 0.5) * gh / H - 0.5, 0.0), gh - 1)
        y0 = int(np.floor(sy))
        y1 = min(y0 + 1, gh - 1)
        fy = sy - y0
        for x in range(W):
            sx = min(max((x + 0.5) * gw / W - 0.5, 0.0), gw - 1)
            x0 = int(np.floor(sx))
            x1 = min(x0 + 1, gw - 1)
            fx = sx - x0
            top = (1 - fx) * m[y0, x0] + fx * m[y0, x1]
            bottom = (1 - fx) * m[y1, x0] + fx * m[y1, x1]
            out[y, x] = (1 - fy) * top + fy * bottom
    return out


def test_upsample_matches_loop_reference():
    m = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    got = P.upsample(m, (12, 10))
    assert got.shape == (12, 10) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref_bilinear(m.astype(np.float64), 12, 10), atol=1e-6)
    # known values: 2 -> 4 samples at 0, 0.25, 0.75, 1 of the way
    np.testing.assert_allclose(
        P.upsample(np.array([[0.0, 1.0]]), (1, 4))[0], [0.0, 0.25, 0.75, 1.0]
    )


def test_disk_footprint():
    d = P.disk_footprint(4)
    assert d.shape == (9, 9) and d.sum() == 49  # lattice points with x^2 + y^2 <= 16
    assert d[4, 0] and d[0, 4] and not d[0, 0]
    assert P.disk_footprint(0).tolist() == [[True]]


def test_paper_smoothing():
    # constant stays constant (every filter is a weighted average or a median)
    const = P.paper_smoothing(np.full((8, 8), 0.7, np.float32), 64, 8)
    assert const.shape == (64, 64)
    np.testing.assert_allclose(const, 0.7, rtol=1e-5)
    # one hot patch: the bump stays centred on that patch, symmetric, and is blurred
    grid = np.zeros((8, 8), np.float32)
    grid[3, 4] = 1.0
    out = P.paper_smoothing(grid, 64, 8)
    cy, cx = np.unravel_index(np.argmax(out), out.shape)
    assert 3 * 8 <= cy < 4 * 8 and 4 * 8 <= cx < 5 * 8
    centre = out[3 * 8 - 8 : 4 * 8 + 8, 4 * 8 - 8 : 5 * 8 + 8]
    np.testing.assert_allclose(centre, centre[::-1, ::-1], atol=1e-6)  # point symmetric
    assert out.max() < P.upsample(grid, 64).max()  # smoothing lowers the peak
    # the composition and the radius: bilinear (loop reference), a median over a disk of
    # radius P/2 written out with loops (scipy's "reflect" border = numpy's "symmetric" pad),
    # then the Gaussian of sigma P/4
    rng = np.random.default_rng(2)
    grid = rng.random((4, 4)).astype(np.float32)
    up = ref_bilinear(grid.astype(np.float64), 16, 16)
    r = 2  # P = 4
    padded = np.pad(up, r, mode="symmetric")
    med = np.empty_like(up)
    for y in range(16):
        for x in range(16):
            window = [
                padded[y + r + dy, x + r + dx]
                for dy in range(-r, r + 1)
                for dx in range(-r, r + 1)
                if dy * dy + dx * dx <= r * r
            ]
            med[y, x] = np.median(window)
    want = ndimage.gaussian_filter(med, sigma=1.0)
    np.testing.assert_allclose(P.paper_smoothing(grid, 16, 4), want, atol=1e-5)


def test_normalise_constant_map_gives_zeros_without_nan():
    for value in (0.0, 3.5, -2.0):
        out = P.normalise(np.full((5, 5), value))
        assert np.all(out == 0.0) and not np.any(np.isnan(out))
    with pytest.raises(P.PostprocessError, match="NaN"):
        P.normalise(np.array([[0.0, np.nan]]))


@settings(max_examples=50, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 6), st.integers(1, 6)),
        elements=st.floats(-1e3, 1e3, width=32),
    )
)
def test_normalise_range(m):
    out = P.normalise(m)
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    assert out.min() >= 0.0 and out.max() <= 1.0
    if m.max() > m.min():
        assert out.min() == 0.0 and out.max() == pytest.approx(1.0)
        assert out.flat[np.argmax(m)] == pytest.approx(1.0)  # order is kept


def test_image_map_pipeline():
    grid = np.arange(16, dtype=np.float32).reshape(4, 4)
    out = P.image_map(grid, 32)
    assert out.shape == (32, 32) and out.min() == 0.0 and out.max() == pytest.approx(1.0)
    raw = P.image_map(grid, 32, normalised=False)
    np.testing.assert_allclose(raw, ref_bilinear(grid.astype(np.float64), 32, 32), atol=1e-5)
    smooth = P.image_map(grid, 32, smoothing="paper")  # patch size inferred: 32 // 4 = 8
    np.testing.assert_allclose(smooth, P.normalise(P.paper_smoothing(grid, 32, 8)))
    with pytest.raises(P.PostprocessError, match="none, paper"):
        P.image_map(grid, 32, smoothing="blur")


def test_colormap_tables_and_endpoints():
    for name in ("viridis", "inferno", "magma", "jet", "gray"):
        lut = P.COLORMAPS[name]
        assert lut.shape == (256, 3) and lut.dtype == np.uint8
    # published endpoints of the matplotlib maps (#440154 -> #fde725 and so on)
    assert P.COLORMAPS["viridis"][0].tolist() == [0x44, 0x01, 0x54]
    assert P.COLORMAPS["viridis"][255].tolist() == [0xFD, 0xE7, 0x25]
    assert P.COLORMAPS["inferno"][0].tolist() == [0, 0, 4]
    assert P.COLORMAPS["inferno"][255].tolist() == [0xFC, 0xFF, 0xA4]
    assert P.COLORMAPS["magma"][255].tolist() == [0xFC, 0xFD, 0xBF]
    # MATLAB jet: dark blue (0, 0, 0.5) -> cyan/green/yellow -> dark red (0.5, 0, 0)
    assert P.COLORMAPS["jet"][0].tolist() == [0, 0, 128]
    assert P.COLORMAPS["jet"][255].tolist() == [128, 0, 0]
    assert P.COLORMAPS["gray"][0].tolist() == [0, 0, 0]
    assert P.COLORMAPS["gray"][255].tolist() == [255, 255, 255]
    # the perceptual maps get brighter from end to end
    for name in ("viridis", "inferno", "magma", "gray"):
        lum = P.COLORMAPS[name].astype(float) @ [0.299, 0.587, 0.114]
        assert lum[-1] > lum[128] > lum[0]


def test_colorize():
    m = np.array([[0.0, 0.5], [1.0, 2.0]], np.float32)  # 2.0 is clipped to 1
    rgba = P.colorize(m, "gray", alpha=200)
    assert rgba.shape == (2, 2, 4) and rgba.dtype == np.uint8
    assert rgba[..., 0].tolist() == [[0, 128], [255, 255]]
    assert np.all(rgba[..., 3] == 200)
    lut = np.zeros((256, 3), np.uint8)
    lut[:, 1] = np.arange(256)
    assert P.colorize(m, lut)[0, 1, :3].tolist() == [0, 128, 0]
    with pytest.raises(P.PostprocessError, match="viridis"):
        P.colorize(m, "rainbow")


def test_overlay_opacity_endpoints_and_blend():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    m = rng.random((8, 8)).astype(np.float32)
    np.testing.assert_array_equal(P.overlay(image, m, opacity=0.0), image)
    np.testing.assert_array_equal(
        P.overlay(image, m, cmap="viridis", opacity=1.0), P.colorize(m, "viridis")[..., :3]
    )
    half = P.overlay(image, np.zeros((8, 8)), cmap="gray", opacity=0.5)
    np.testing.assert_array_equal(half, np.rint(image / 2.0).astype(np.uint8))
    # a patch-grid map is upsampled to the image
    grid = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    out = P.overlay(image, grid, cmap="gray", opacity=1.0)
    assert out.shape == (8, 8, 3) and out[0, 0, 0] == 0 and out[0, 7, 0] == 255
    with pytest.raises(P.PostprocessError, match="uint8"):
        P.overlay(image.astype(np.float32), m)
    with pytest.raises(P.PostprocessError, match="opacity"):
        P.overlay(image, m, opacity=1.5)


# ----------------------------------------------------------------------------------------------
# The fast paths (numpy upsampling, table-driven overlay) against the formulas they replace
# ----------------------------------------------------------------------------------------------
def torch_bilinear(m: np.ndarray, H: int, W: int) -> np.ndarray:
    """PyTorch's ``interpolate(bilinear, align_corners=False)`` in the map's dtype."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(m))[None, None]
    return F.interpolate(t, size=(H, W), mode="bilinear", align_corners=False)[0, 0].numpy()


@pytest.mark.parametrize(
    "shape",
    [
        (14, 14, 224, 224),
        (8, 8, 64, 64),
        (3, 4, 12, 10),
        (7, 5, 7, 20),
        (14, 14, 225, 300),
        (1, 1, 5, 3),
        (1, 6, 4, 6),
    ],
)
def test_upsample_equals_torch_and_the_loop_reference(shape):
    gh, gw, H, W = shape
    rng = np.random.default_rng(gh * 100 + W)
    m = rng.random((gh, gw))
    # float32 (the display path): the exact (float64 loop) value to a few float32 ulp (values
    # in [0, 1], ulp(1) = 1.2e-7), and PyTorch's float32 result, which computes the weights in
    # float32 (off by up to ~6e-7 when the scale H / gh is not a power of two)
    got = P.upsample(m.astype(np.float32), (H, W))
    assert got.dtype == np.float32 and got.shape == (H, W)
    np.testing.assert_allclose(
        got, ref_bilinear(m.astype(np.float32).astype(np.float64), H, W), rtol=0, atol=2.5e-7
    )
    np.testing.assert_allclose(got, torch_bilinear(m.astype(np.float32), H, W), rtol=0, atol=1e-6)
    # float64 (the metrics path): the loop reference to float64 rounding
    got64 = P.upsample(m, (H, W), dtype=np.float64)
    assert got64.dtype == np.float64
    np.testing.assert_allclose(got64, ref_bilinear(m, H, W), rtol=0, atol=1e-14)
    np.testing.assert_allclose(got64, torch_bilinear(m, H, W), rtol=0, atol=1e-14)


def test_upsample_shrinking_still_antialiased_like_torch():
    import torch
    import torch.nn.functional as F

    m = np.random.default_rng(3).random((40, 30)).astype(np.float32)
    want = F.interpolate(
        torch.from_numpy(m)[None, None],
        size=(10, 40),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )[0, 0].numpy()
    np.testing.assert_array_equal(P.upsample(m, (10, 40)), want)


def test_bilinear_taps_rows_are_convex_combinations():
    i0, i1, w0, w1 = P.bilinear_taps(3, 12, np.float64)
    W = np.zeros((12, 3))
    np.add.at(W, (np.arange(12), i0), w0)
    np.add.at(W, (np.arange(12), i1), w1)
    np.testing.assert_allclose(W.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    assert np.all(W >= 0)
    # 3 -> 12 (factor 4): sample i sits at (i + 1/2) / 4 - 1/2 of the source, clamped to [0, 2]
    x = np.clip((np.arange(12) + 0.5) / 4 - 0.5, 0, 2)
    np.testing.assert_allclose(W @ np.arange(3.0), x, atol=1e-15)  # a linear ramp is exact
    with pytest.raises(P.PostprocessError, match="enlarge"):
        P.bilinear_taps(5, 4)


def ref_overlay(image: np.ndarray, m: np.ndarray, cmap: str, opacity: float) -> np.ndarray:
    """The overlay formula evaluated directly on the image, float32, as before the tables."""
    lut = P.COLORMAPS[cmap]
    a = np.nan_to_num(np.asarray(m, np.float32), nan=0.0)
    idx = np.rint(np.clip(a, 0.0, 1.0) * 255).astype(np.intp)
    o = np.float32(opacity)
    out = (1 - o) * image.astype(np.float32) + o * lut[idx].astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("opacity", [0.0, 0.5, 0.37, 0.7, 1.0])
def test_overlay_tables_equal_the_float_formula(opacity):
    rng = np.random.default_rng(int(opacity * 100))
    image = rng.integers(0, 256, size=(31, 17, 3), dtype=np.uint8)
    m = rng.random((31, 17)).astype(np.float32)
    m[0, :5] = (np.arange(5) + 0.5) / 255  # exactly half-way between two table entries
    m[1, :6] = [-0.5, 1.5, np.nan, np.inf, -np.inf, 1.0]  # clipped; NaN -> 0
    for cmap in P.COLORMAPS:
        got = P.overlay(image, m, cmap=cmap, opacity=opacity)
        assert got.dtype == np.uint8 and got.shape == image.shape
        np.testing.assert_array_equal(got, ref_overlay(image, m, cmap, opacity))
    # every (pixel value, map index) pair: the tables hold the formula's value for each
    values = np.arange(256, dtype=np.uint8)
    image = np.broadcast_to(values[:, None, None], (256, 256, 3)).copy()
    m = np.broadcast_to(values[None, :] / np.float32(255), (256, 256)).astype(np.float32)
    np.testing.assert_array_equal(
        P.overlay(image, m, cmap="jet", opacity=opacity), ref_overlay(image, m, "jet", opacity)
    )


def test_lut_indices_round_and_clip():
    m = np.array([[0.0, 1.0, 0.5, 2 / 255], [-1.0, 7.0, np.nan, 0.5 / 255]], np.float32)
    got = P.lut_indices(m)
    assert got.dtype == np.uint8
    # 0.5 * 255 = 127.5 rounds to even (128); 0.5 / 255 * 255 = 0.5 rounds to 0
    assert got.tolist() == [[0, 255, 128, 2], [0, 255, 0, 0]]


def test_normalise_rejects_infinity_and_keeps_the_formula():
    with pytest.raises(P.PostprocessError, match="infinite"):
        P.normalise(np.array([[0.0, np.inf]]))
    with pytest.raises(P.PostprocessError, match="infinite"):
        P.normalise(np.array([[-np.inf, 1.0]], np.float32))
    m = np.random.default_rng(4).normal(size=(9, 7))
    want = (m - m.min()) / (m.max() - m.min())
    np.testing.assert_allclose(P.normalise(m), want, rtol=0, atol=2e-7)
