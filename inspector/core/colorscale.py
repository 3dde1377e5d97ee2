"""Colour scales with real values: which map value each end of a colour bar stands for.

Every view colours a map by an affine rule ``colour = (value - lo) / (hi - lo)`` clipped to
[0, 1]; the colour bar beside it is labelled with ``lo`` and ``hi`` in the method's own units
(attention probabilities, rollout weights, relevance), never the 0..1 of the colour index.

One scaling rule, chosen by the user (:data:`SCALINGS`):

* ``per-map`` - each map spans its own minimum to maximum (the main view, each grid cell and
  each compare tile alike, so that a layer/head looks the same in the grid and in the view);
* ``grid`` - the head/layer grid's attention cells share one range (heads comparable), the
  rollout column another (rollout weights are not attention probabilities);
* ``compare`` - the compare view's tiles share one range (models comparable); the grid, one
  model's cells, shares its ranges too (a scope wider than the grid includes it).

The main view always spans its own map's range: it shows one map. :func:`grid_scales` and
:func:`tile_scales` apply the rule; the views only draw what they return.

Pure numpy; no Qt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .postprocess import paper_smoothing, upsample

__all__ = [
    "SCALINGS",
    "SCALING_LABELS",
    "GridScales",
    "Scale",
    "grid_scales",
    "map_values",
    "recolour",
    "scale_of",
    "tile_scales",
    "to_unit",
]

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


def _check_rule(rule: str) -> str:
    if rule not in SCALINGS:
        raise ValueError(f"unknown scaling {rule!r}; choose from: {', '.join(SCALINGS)}")
    return rule


@dataclass(frozen=True)
class GridScales:
    """The head/layer grid's colours under one scaling rule.

    Attributes:
        unit: ``(L, C, rows, cols)`` float32 in [0, 1], the colour index of every cell pixel.
        lo, hi: ``(L, C)`` float64, the value each cell's colour 0 and colour 1 stand for.
        shared: True when cells share ranges (one for the attention columns, one for rollout).
    """

    unit: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    shared: bool

    def cell(self, layer: int, column: int, units: str = "") -> Scale:
        return Scale(float(self.lo[layer, column]), float(self.hi[layer, column]), units)


def grid_scales(raw: np.ndarray, heads: int, rule: str) -> GridScales:
    """Apply ``rule`` to the grid's raw cells ``(L, H + 2, rows, cols)`` (the heads, the heads
    fused, the rollout; :class:`inspector.core.explain.ExplorerMaps`).

    ``per-map``: every cell spans its own min..max (as the main view does). ``grid`` and
    ``compare``: the head and fused columns share the range of all of them, the rollout column
    the range of the rollout cells (its weights are another quantity). Non-finite values map to
    colour 0."""
    _check_rule(rule)
    r = np.nan_to_num(np.asarray(raw, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    L, C = r.shape[:2]
    if rule == "per-map":
        lo, hi = r.min(axis=(-2, -1)), r.max(axis=(-2, -1))  # (L, C)
    else:
        att, rol = r[:, : heads + 1], r[:, heads + 1 :]
        lo, hi = np.empty((L, C)), np.empty((L, C))
        lo[:, : heads + 1], hi[:, : heads + 1] = att.min(), att.max()
        if rol.size:
            lo[:, heads + 1 :], hi[:, heads + 1 :] = rol.min(), rol.max()
    span = (hi - lo)[..., None, None]
    unit = np.divide(r - lo[..., None, None], span, out=np.zeros_like(r), where=span > 0)
    return GridScales(np.clip(unit, 0.0, 1.0).astype(np.float32), lo, hi, rule != "per-map")


def tile_scales(values: list[np.ndarray | None], rule: str, units: str = "") -> list[Scale | None]:
    """The colour range of each compare tile (``None`` for a tile without a map): its own
    under ``per-map`` and ``grid``, the range of every tile under ``compare``."""
    _check_rule(rule)
    if rule != "compare":
        return [None if v is None else scale_of([v], units) for v in values]
    shared = scale_of([v for v in values if v is not None], units)
    return [None if v is None else shared for v in values]


def recolour(
    display: np.ndarray, values: np.ndarray, scale: Scale, cmap: str, opacity: float
) -> np.ndarray:
    """The overlay of ``values`` ``(S, S)`` coloured by ``scale`` over ``display``
    ``(S, S, 3)`` uint8 (the pipeline's blend; with a tile's own scale it is the pipeline's
    overlay)."""
    from .postprocess import overlay

    return overlay(display, to_unit(values, scale), cmap=cmap, opacity=opacity)
