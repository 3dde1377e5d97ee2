"""SSIM (Wang et al. 2004) against known answers and a direct float64 window-by-window sum."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.core.ssim import SSIMError, ssim, ssim_map


def _window() -> np.ndarray:
    """Wang et al.'s 11 x 11 Gaussian window, sigma 1.5, unit sum (MATLAB fspecial)."""
    t = np.arange(-5, 6, dtype=np.float64)
    g = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * 1.5**2))
    return g / g.sum()


def _direct(x: np.ndarray, y: np.ndarray, L: float = 1.0) -> np.ndarray:
    """Eq. 13 at every window wholly inside the image, by explicit weighted sums."""
    w = _window()
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    H, W = x.shape
    out = np.empty((H - 10, W - 10))
    for i in range(H - 10):
        for j in range(W - 10):
            a, b = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mx, my = (w * a).sum(), (w * b).sum()
            vx = (w * (a - mx) ** 2).sum()
            vy = (w * (b - my) ** 2).sum()
            cxy = (w * (a - mx) * (b - my)).sum()
            out[i, j] = ((2 * mx * my + c1) * (2 * cxy + c2)) / (
                (mx**2 + my**2 + c1) * (vx + vy + c2)
            )
    return out


def test_identical_maps_give_one():
    x = np.random.default_rng(0).random((20, 24))
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)


def test_constant_maps_known_answer():
    # Zero variance: the contrast-structure term is C2 / C2 = 1, luminance (2ab + C1)/(a²+b²+C1).
    a, b = 0.2, 0.7
    c1 = 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ssim(np.full((16, 16), a), np.full((16, 16), b)) == pytest.approx(expected, rel=1e-9)
    # With data range 255 the constants grow 255-fold in L.
    c1 = (0.01 * 255) ** 2
    expected = (2 * 50 * 60 + c1) / (50**2 + 60**2 + c1)
    assert ssim(np.full((12, 12), 50.0), np.full((12, 12), 60.0), data_range=255) == (
        pytest.approx(expected, rel=1e-9)
    )


def test_matches_direct_window_sums_on_random_maps():
    rng = np.random.default_rng(1)
    x = rng.random((19, 23))
    for y in (rng.random((19, 23)), 0.5 * x + 0.1, 1.0 - x, x + 0.05 * rng.random((19, 23))):
        ref = _direct(x, y)
        np.testing.assert_allclose(ssim_map(x, y), ref, rtol=1e-9, atol=1e-12)
        assert ssim(x, y) == pytest.approx(ref.mean(), rel=1e-9)
    assert ssim(x, 1.0 - x) < 0 < ssim(x, 0.5 * x + 0.1) < 1


def test_bad_input():
    with pytest.raises(SSIMError, match="one shape"):
        ssim(np.zeros((12, 12)), np.zeros((12, 13)))
    with pytest.raises(SSIMError, match="at least 11"):
        ssim(np.zeros((10, 12)), np.zeros((10, 12)))
    with pytest.raises(SSIMError, match="NaN"):
        ssim(np.full((12, 12), np.nan), np.zeros((12, 12)))
    with pytest.raises(SSIMError, match="data_range"):
        ssim(np.zeros((12, 12)), np.zeros((12, 12)), data_range=0)
