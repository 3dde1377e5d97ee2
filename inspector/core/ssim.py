"""Structural similarity (SSIM) of two maps, as Wang et al. define it.

Wang, Bovik, Sheikh and Simoncelli 2004, "Image quality assessment: from error visibility to
structural similarity" (IEEE TIP 13(4)), eq. 13 with the section III-C settings: an 11 x 11
circular-symmetric Gaussian window of standard deviation 1.5 (normalised to unit sum),
``K1 = 0.01``, ``K2 = 0.03``, ``C1 = (K1 L)^2``, ``C2 = (K2 L)^2`` with ``L`` the data range.
Per window position (local statistics weighted by the window ``w``)::

    mu_x = sum w x,   sigma_x^2 = sum w x^2 - mu_x^2,   sigma_xy = sum w x y - mu_x mu_y
    SSIM = (2 mu_x mu_y + C1) (2 sigma_xy + C2)
           / ((mu_x^2 + mu_y^2 + C1) (sigma_x^2 + sigma_y^2 + C2))

and the score is the mean over the positions where the window lies wholly inside the image
(their ``filter2(..., 'valid')``; scikit-image's ``structural_similarity`` with
``gaussian_weights=True, use_sample_covariance=False`` crops the same border). Written with
``scipy.ndimage.gaussian_filter`` (``truncate=3.5`` gives radius 5, the 11 taps) because
scikit-image is not a dependency.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

__all__ = ["SSIMError", "ssim", "ssim_map", "WINDOW", "SIGMA"]

SIGMA = 1.5
WINDOW = 11  # taps; radius = int(3.5 * 1.5 + 0.5) = 5 in gaussian_filter
_TRUNCATE = 3.5


class SSIMError(ValueError):
    """Maps of different shapes, too small for the window, or not finite."""


def _check(a, b) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise SSIMError(f"SSIM needs two 2-D maps of one shape, got {x.shape} and {y.shape}")
    if min(x.shape) < WINDOW:
        raise SSIMError(f"SSIM needs maps of at least {WINDOW} x {WINDOW} pixels, got {x.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise SSIMError("SSIM of a map with NaN or infinite values")
    return x, y


def ssim_map(a, b, *, data_range: float = 1.0) -> np.ndarray:
    """The local SSIM at every valid window position, ``(H - 10, W - 10)`` float64.

    Args:
        a, b: ``(H, W)`` maps, H and W at least 11.
        data_range: ``L``, the span the values can take (1 for maps in [0, 1]).
    """
    x, y = _check(a, b)
    if not data_range > 0:
        raise SSIMError(f"data_range must be positive, got {data_range!r}")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def filt(v: np.ndarray) -> np.ndarray:
        return gaussian_filter(v, SIGMA, truncate=_TRUNCATE, mode="reflect")

    mu_x, mu_y = filt(x), filt(y)
    var_x = filt(x * x) - mu_x * mu_x
    var_y = filt(y * y) - mu_y * mu_y
    cov = filt(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    r = WINDOW // 2  # positions closer to the border see the padding: left out
    return (num / den)[r:-r, r:-r]


def ssim(a, b, *, data_range: float = 1.0) -> float:
    """Mean SSIM of two maps (Wang et al. 2004): 1 for identical maps, in [-1, 1].

    Args:
        a, b: ``(H, W)`` maps, H and W at least 11.
        data_range: ``L`` in ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``; 1 for maps in [0, 1].
    """
    return float(ssim_map(a, b, data_range=data_range).mean())
