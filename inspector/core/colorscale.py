"""Colour scales with real values: which map value each end of a colour bar stands for.

Every view colours a map by an affine rule ``colour = (value - lo) / (hi - lo)`` clipped to
[0, 1]; the colour bar beside it is labelled with ``lo`` and ``hi`` in the method's own units
(attention probabilities, rollout weights, relevance), never the 0..1 of the colour index.

One scaling rule, chosen by the user (:data:`SCALINGS`):

* ``per-map`` - each map spans its own minimum to maximum (the main view, each grid cell and
  each compare tile alike, so that a layer/head looks the same in the grid and in the view);
* ``grid`` - the head/layer grid's attention cells share one range (heads comparable), the
  rollout column another (rollout weights are not attention probabilities);
* ``compare`` - the compare view's tiles share one range (models comparable).

Pure numpy; no Qt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .postprocess import paper_smoothing, upsample

__all__ = ["SCALINGS", "SCALING_LABELS", "Scale", "map_values", "scale_of", "to_unit"]

SCALINGS: tuple[str, ...] = ("per-map", "grid", "compare")
SCALING_LABELS = {
    "per-map": "Per map (own min–max)",
    "grid": "Shared across the grid",
    "compare": "Shared across the compare view",
}


@dataclass(frozen=True)
class Scale:
    """The values at the ends of a colour bar (``lo`` at colour 0, ``hi`` at colour 1)."""

    lo: float
    hi: float
    units: str = ""

    @property
    def constant(self) -> bool:
        return not self.hi > self.lo


def map_values(raw_grid: np.ndarray, size: int, patch_size: int, smoothing: str) -> np.ndarray:
    """The map at image resolution in the method's own units: ``(S, S)`` float32.

    The same upsampling (and smoothing) as :func:`inspector.core.postprocess.full_map`, without
    its min-max scaling; non-finite entries count as 0, as in the pipeline. Since both steps
    commute with a positive scale and a shift (bilinear weights sum to 1; median and Gaussian
    filters are translation- and scale-equivariant), min-max scaling this array gives the
    pipeline's ``full`` map.
    """
    g = np.nan_to_num(np.asarray(raw_grid, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if smoothing == "paper":
        return paper_smoothing(g, size, patch_size)
    return upsample(g, (size, size))


def scale_of(maps: Iterable[np.ndarray], units: str = "") -> Scale:
    """The smallest range holding every finite value of ``maps`` (0..0 when there is none)."""
    lo, hi = np.inf, -np.inf
    for m in maps:
        a = np.asarray(m, dtype=np.float64)
        a = a[np.isfinite(a)]
        if a.size:
            lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
    if lo > hi:
        return Scale(0.0, 0.0, units)
    return Scale(lo, hi, units)


def to_unit(values: np.ndarray, scale: Scale) -> np.ndarray:
    """``(values - lo) / (hi - lo)`` clipped to [0, 1], float32 (a constant scale gives 0)."""
    v = np.asarray(values, dtype=np.float32)
    if scale.constant:
        return np.zeros_like(v)
    out = (v - np.float32(scale.lo)) / np.float32(scale.hi - scale.lo)
    return np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0).astype(np.float32, copy=False)
