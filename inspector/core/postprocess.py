"""From a patch-grid saliency map to pixels: upsampling, smoothing, normalisation, colour.

Everything is numpy float32 (maps) or uint8 (images), with no Qt and no matplotlib: the
colormap tables live in :mod:`inspector.core.colormap_data` (viridis, inferno, magma, plasma)
or are formulas (jet, gray).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .colormap_data import HEX_TABLES

__all__ = [
    "COLORMAPS",
    "SMOOTHINGS",
    "PostprocessError",
    "colorize",
    "disk_footprint",
    "image_map",
    "is_constant",
    "normalise",
    "overlay",
    "blend_tables",
    "lut_indices",
    "paper_smoothing",
    "bilinear_taps",
    "upsample",
]

SMOOTHINGS: tuple[str, ...] = ("none", "paper")


class PostprocessError(ValueError):
    """Bad input to post-processing (wrong shape, unknown colormap, non-finite map...)."""


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int | np.integer) else (int(size[0]), int(size[1]))
    if h < 1 or w < 1:
        raise PostprocessError(f"size must be positive, got {size}")
    return int(h), int(w)


def _as_map(m: Any, name: str = "map", dtype: type = np.float32) -> np.ndarray:
    if isinstance(m, torch.Tensor):
        m = m.detach().cpu().numpy()
    a = np.asarray(m, dtype=dtype)
    if a.ndim != 2 or 0 in a.shape:
        raise PostprocessError(f"{name} must be a 2-D (rows, cols) array, got shape {a.shape}")
    return a


@lru_cache(maxsize=64)
def _bilinear_taps_cached(n_in: int, n_out: int, dtype: type) -> tuple[np.ndarray, ...]:
    x = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)  # (n_out,) float64
    i0 = np.minimum(np.floor(x).astype(np.intp), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = np.clip(x - i0, 0.0, 1.0)
    taps = (i0, i1, (1.0 - lam).astype(dtype), lam.astype(dtype))
    for t in taps:
        t.flags.writeable = False
    return taps


def bilinear_taps(
    n_in: int, n_out: int, dtype: type = np.float32
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The two taps of 1-D bilinear enlarging with half-pixel centres (``align_corners=False``).

    Output sample ``i`` reads the source position ``x = max((i + 1/2) n_in / n_out - 1/2, 0)``
    (PyTorch's ``area_pixel_compute_source_index``), ``i0 = min(floor(x), n_in - 1)``,
    ``i1 = min(i0 + 1, n_in - 1)``, ``λ = x - i0`` clipped to [0, 1], and is
    ``(1 - λ) s[i0] + λ s[i1]`` (both taps on the last sample at the far edge). Memoised and
    read-only. As a matrix ``W (n_out, n_in)`` this is row ``i`` with ``1 - λ`` at ``i0`` and
    ``λ`` at ``i1``, so 2-D upsampling is ``W_r @ map @ W_cᵀ``.

    Args:
        n_in: source samples (>= 1).
        n_out: output samples (>= n_in).
        dtype: dtype of the weights (float32 or float64).

    Returns:
        ``(i0, i1, w0, w1)``, each ``(n_out,)``: indices (intp) and weights ``1 - λ``, ``λ``.
    """
    if not 1 <= n_in <= n_out:
        raise PostprocessError(
            f"bilinear taps enlarge: need 1 <= n_in <= n_out, got {n_in} -> {n_out}"
        )
    return _bilinear_taps_cached(int(n_in), int(n_out), np.dtype(dtype).type)


def upsample(saliency: Any, size: int | tuple[int, int], *, dtype: type = np.float32) -> np.ndarray:
    """Bilinear resampling of a ``(gh, gw)`` map to ``size`` = ``(H, W)`` (or one int).

    ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``: pixel centres
    are aligned (half-pixel convention), as PIL and OpenCV resize do. When shrinking,
    antialiasing is on (a widened triangle filter, as PIL does) so that no input pixel is
    skipped. Computed in ``dtype`` (float64 for metrics).

    Enlarging (the usual case: patch grid -> image) is done in numpy from the memoised
    :func:`bilinear_taps`: along the columns, then along the rows, each output sample the
    weighted sum of two gathered source samples, in PyTorch's order (~0.12 ms for 14 x 14 ->
    224 x 224; equal to PyTorch's result up to float rounding, one ulp). This avoids both
    torch and BLAS: their thread pools, woken from sleep between slider moves, or spinning for
    a core that another process holds, made the same call cost 3 to 10 ms of CPU time.

    Returns:
        ``(H, W)`` array of ``dtype``.
    """
    a = _as_map(saliency, dtype=dtype)
    h, w = _size(size)
    if a.shape == (h, w):
        return a.copy()
    if h >= a.shape[0] and w >= a.shape[1] and a.dtype in (np.float32, np.float64):
        c0, c1, u0, u1 = bilinear_taps(a.shape[1], w, a.dtype.type)  # (W,) each
        r0, r1, v0, v1 = bilinear_taps(a.shape[0], h, a.dtype.type)  # (H,) each
        t = a.take(c0, axis=1)  # (gh, W)
        t *= u0
        t1 = a.take(c1, axis=1)
        t1 *= u1
        t += t1  # columns interpolated: (gh, W)
        out = t.take(r0, axis=0)  # (H, W)
        out *= v0[:, None]
        t2 = t.take(r1, axis=0)
        t2 *= v1[:, None]
        out += t2
        return out
    t = torch.from_numpy(np.ascontiguousarray(a))[None, None]  # (1, 1, gh, gw)
    shrink = a.shape[0] > h or a.shape[1] > w
    out = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=shrink)
    return out[0, 0].numpy().astype(dtype, copy=False)


def is_constant(x: np.ndarray) -> bool:
    """True when the map's range is zero up to float rounding.

    ``max - min <= 1e-6 * max(|x|)`` (float32 resolution): bilinear upsampling of a constant
    map leaves rounding noise, which min-max scaling would otherwise blow up to [0, 1].
    """
    lo, hi = float(np.min(x)), float(np.max(x))
    return hi - lo <= 1e-6 * max(abs(lo), abs(hi))


def disk_footprint(radius: int) -> np.ndarray:
    """A disk structuring element of the given radius: ``(2r+1, 2r+1)`` bool with
    ``x^2 + y^2 <= r^2`` (the convention of ``skimage.morphology.disk``)."""
    r = int(radius)
    if r < 0:
        raise PostprocessError(f"radius must be >= 0, got {radius}")
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (xx * xx + yy * yy) <= r * r


def paper_smoothing(
    map_grid: Any, image_size: int | tuple[int, int], patch_size: int
) -> np.ndarray:
    """Seed 003's smoothing (Calderaro et al. 2023, section 3): bilinear upsampling of the
    ``(H/P, W/P)`` map to ``H x W``, then a median filter "with a structural element of radius
    P/2", then a Gaussian blur with ``sigma = P/4``.

    The structural element is read as a disk of radius ``r = P // 2`` pixels, i.e. a
    ``(P+1) x (P+1)`` window (for even P) restricted to ``x^2 + y^2 <= r^2``. Borders use
    scipy's default ``reflect`` mode. Cost: ~10 ms at 64x64 (P = 8), ~0.4 s at 224x224
    (P = 16) on a 2-core CPU; the median filter dominates.

    Args:
        map_grid: ``(gh, gw)`` patch-grid map.
        image_size: ``H`` (square) or ``(H, W)``.
        patch_size: ``P`` in pixels.

    Returns:
        ``(H, W)`` float32 (not normalised).
    """
    p = int(patch_size)
    if p < 1:
        raise PostprocessError(f"patch_size must be positive, got {patch_size}")
    # scipy.ndimage costs ~0.3 s at import: only the paper smoothing needs it (app start-up).
    from scipy import ndimage

    up = upsample(map_grid, image_size)
    med = ndimage.median_filter(up, footprint=disk_footprint(p // 2))
    return ndimage.gaussian_filter(med, sigma=p / 4.0).astype(np.float32, copy=False)


def normalise(saliency: Any) -> np.ndarray:
    """Min-max scaling to [0, 1]: ``(m - min) / (max - min)``; a constant map gives zeros.

    Raises:
        PostprocessError: the map holds NaN or infinity.
    """
    a = np.asarray(
        saliency.detach().cpu().numpy() if isinstance(saliency, torch.Tensor) else saliency,
        dtype=np.float32,
    )
    if a.size == 0:
        return a.copy()
    # One min and one max serve the finiteness check (a NaN propagates into both, an infinity
    # becomes one of them), the constant test and the scaling.
    lo, hi = float(a.min()), float(a.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise PostprocessError("cannot normalise a map that holds NaN or infinite values")
    if hi - lo <= 1e-6 * max(abs(lo), abs(hi)):  # is_constant(a)
        return np.zeros_like(a)
    out = (a - np.float32(lo)) / np.float32(hi - lo)
    # Rounding can overshoot by one ulp; the contract is [0, 1].
    return np.clip(out, 0.0, 1.0, out=out)


def image_map(
    map_grid: Any,
    image_size: int | tuple[int, int],
    *,
    smoothing: str = "none",
    patch_size: int | None = None,
    normalised: bool = True,
) -> np.ndarray:
    """Patch-grid map to an image-sized map, as SMM, the overlay and exports use it.

    ``smoothing="none"``: bilinear upsampling; ``"paper"``: :func:`paper_smoothing` (needs
    ``patch_size``; default ``H // gh``). Then min-max normalisation to [0, 1] if asked.

    Returns:
        ``(H, W)`` float32.
    """
    if smoothing not in SMOOTHINGS:
        raise PostprocessError(
            f"unknown smoothing {smoothing!r}; choose from: {', '.join(SMOOTHINGS)}"
        )
    grid = _as_map(map_grid)
    h, w = _size(image_size)
    if smoothing == "paper":
        p = patch_size if patch_size is not None else max(1, h // grid.shape[0])
        out = paper_smoothing(grid, (h, w), p)
    else:
        out = upsample(grid, (h, w))
    return normalise(out) if normalised else out


# --------------------------------------------------------------------------------------------
# Colormaps
# --------------------------------------------------------------------------------------------
def _from_hex(hex_table: str) -> np.ndarray:
    table = np.frombuffer(bytes.fromhex(hex_table), dtype=np.uint8).reshape(256, 3).copy()
    table.flags.writeable = False
    return table


def _jet() -> np.ndarray:
    """MATLAB's jet: piecewise-linear r, g, b = clip(1.5 - |4x - c|, 0, 1), c = 3, 2, 1."""
    x = np.linspace(0.0, 1.0, 256)
    rgb = np.stack([np.clip(1.5 - np.abs(4 * x - c), 0.0, 1.0) for c in (3, 2, 1)], axis=1)
    table = np.round(rgb * 255).astype(np.uint8)
    table.flags.writeable = False
    return table


def _gray() -> np.ndarray:
    table = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    table.flags.writeable = False
    return table


#: Name -> ``(256, 3)`` uint8 lookup table, index 0 for map value 0, 255 for 1 (read-only).
COLORMAPS: dict[str, np.ndarray] = {
    **{name: _from_hex(hx) for name, hx in HEX_TABLES.items()},
    "jet": _jet(),
    "gray": _gray(),
}


def _lut(cmap: str | np.ndarray) -> np.ndarray:
    if isinstance(cmap, str):
        if cmap not in COLORMAPS:
            raise PostprocessError(
                f"unknown colormap {cmap!r}; choose from: {', '.join(sorted(COLORMAPS))}"
            )
        return COLORMAPS[cmap]
    lut = np.asarray(cmap)
    if lut.shape != (256, 3) or lut.dtype != np.uint8:
        raise PostprocessError(
            f"a colormap table must be (256, 3) uint8, got {lut.shape} {lut.dtype}"
        )
    return lut


def lut_indices(map01: Any) -> np.ndarray:
    """Colormap indices ``round(255 * clip(v, 0, 1))`` of a map, ``(H, W)`` uint8; NaN -> 0.

    Computed as ``rint(min(max(255 v, 0), 255))`` in float32, which equals
    ``rint(255 clip(v, 0, 1))`` for every v (both are 0 below 0 and 255 above 1), with
    ``fmax``/``fmin`` (which return the non-NaN operand) sending NaN to 0 without a
    ``nan_to_num`` copy. Half-way values round to even, as ``np.rint`` does.
    """
    a = _as_map(map01)
    t = np.multiply(a, np.float32(255))  # (H, W) float32, a new array
    np.fmax(t, np.float32(0), out=t)
    np.fmin(t, np.float32(255), out=t)
    np.rint(t, out=t)
    return t.astype(np.uint8)


def colorize(map01: Any, cmap: str | np.ndarray = "viridis", *, alpha: int = 255) -> np.ndarray:
    """Map values in [0, 1] through a colormap: ``(H, W)`` -> ``(H, W, 4)`` uint8 RGBA.

    Values are clipped to [0, 1] and looked up at ``round(255 * v)``; NaN becomes 0
    (:func:`lut_indices`).

    Args:
        map01: ``(H, W)`` map, normally from :func:`normalise`.
        cmap: a name in :data:`COLORMAPS` or a ``(256, 3)`` uint8 table.
        alpha: constant alpha channel, 0..255.
    """
    a = _as_map(map01)
    lut = _lut(cmap)
    if not 0 <= int(alpha) <= 255:
        raise PostprocessError(f"alpha must be in 0..255, got {alpha}")
    idx = lut_indices(a)
    out = np.empty((*a.shape, 4), dtype=np.uint8)
    out[..., :3] = lut[idx]
    out[..., 3] = int(alpha)
    return out


def _check_image(image: Any) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise PostprocessError(f"image must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
    return img


def _check_opacity(opacity: float) -> float:
    if not 0.0 <= float(opacity) <= 1.0:
        raise PostprocessError(f"opacity must be in [0, 1], got {opacity}")
    return float(opacity)


@lru_cache(maxsize=32)
def _blend_tables_cached(lut_bytes: bytes, opacity: float) -> np.ndarray:
    lut = np.frombuffer(lut_bytes, dtype=np.uint8).reshape(256, 3)
    o = np.float32(opacity)
    base = (1 - o) * np.arange(256, dtype=np.float32)  # (256,) image term per pixel value
    color = o * lut.astype(np.float32)  # (256, 3) colour term per map index
    # (3, 256 pixel values, 256 map indices): the same float32 operations as the formula in
    # overlay(), evaluated once for every possible (pixel value, index) pair.
    out = base[None, :, None] + color.T[:, None, :]
    tables = np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(3, 65536)
    tables.flags.writeable = False
    return tables


def blend_tables(cmap: str | np.ndarray, opacity: float) -> np.ndarray:
    """Every possible blended value, ``(3, 65536)`` uint8 (read-only, memoised).

    ``tables[c, (v << 8) | i] = round((1 - o) v + o lut[i, c])`` in float32 for a pixel value
    ``v`` of channel ``c`` and a colormap index ``i``: the overlay is then one lookup per
    channel and pixel instead of float arithmetic on the whole image.
    """
    return _blend_tables_cached(_lut(cmap).tobytes(), _check_opacity(opacity))


def overlay(
    image: Any, map01: Any, *, cmap: str | np.ndarray = "jet", opacity: float = 0.5
) -> np.ndarray:
    """Alpha-blend a colour-mapped saliency map over an image.

    ``out = round((1 - opacity) * image + opacity * colormap(map01))`` (float32 arithmetic,
    half-way values to even), looked up in :func:`blend_tables`: ~1 ms for 224 x 224 instead
    of ~5 ms of float arithmetic on the whole image. A map smaller than the image (e.g. the
    patch grid) is first upsampled bilinearly to the image size.

    Args:
        image: ``(H, W, 3)`` uint8 RGB (or ``(H, W)`` grey, replicated to RGB).
        map01: map in [0, 1], ``(H, W)`` or any 2-D size to upsample.
        cmap: colormap name or table.
        opacity: 0 returns the image, 1 the coloured map.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    img = _check_image(image)
    tables = blend_tables(cmap, opacity)  # (3, 65536)
    m = _as_map(map01)
    if m.shape != img.shape[:2]:
        m = upsample(m, img.shape[:2])
    idx = lut_indices(m).astype(np.uint16)  # (H, W)
    out = np.empty(img.shape, dtype=np.uint8)
    plane = np.empty(idx.shape, dtype=np.uint8)
    for c in range(3):
        key = img[..., c].astype(np.uint16)  # (H, W): (v << 8) | i indexes the table
        key <<= 8
        key |= idx
        np.take(tables[c], key, out=plane)  # contiguous lookups, then one strided copy
        out[..., c] = plane
    return out


def full_map(grid: Any, size: int, patch_size: int, smoothing: str = "none") -> np.ndarray:
    """The patch-grid map at image resolution ``(size, size)``, float32 in [0, 1].

    ``smoothing="paper"`` applies seed 003's bilinear upsampling, median filter and Gaussian
    blur (:func:`paper_smoothing`); ``"none"`` bilinear upsampling; then min-max scaling.
    """
    if smoothing == "paper":
        full = paper_smoothing(grid, size, patch_size)
    elif smoothing == "none":
        full = upsample(grid, (size, size))
    else:
        raise ValueError(f"smoothing must be 'none' or 'paper', got {smoothing!r}")
    return normalise(full)
