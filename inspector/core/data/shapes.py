"""The ten shape classes of the synthetic dataset: their outlines and membership tests.

A shape is defined in canonical coordinates ``(u, v)`` inside the unit disc;
:func:`shape_outline` places its polygons in the image's pixel frame and ``MEMBERSHIP`` holds
the per-class tests ``inside(u, v) -> bool array`` that rendering evaluates (analytic where exact
and cheap, polygons otherwise). See :mod:`inspector.core.data.synthetic` for the geometry
convention.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np

__all__ = ["MEMBERSHIP", "SYNTHETIC_CLASSES", "shape_outline"]

SYNTHETIC_CLASSES: Final[tuple[str, ...]] = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "ring",
    "hexagon",
    "crescent",
    "arrow",
    "heart",
)

_RING_INNER: Final[float] = 0.58  # ring = unit disc minus this radius
_CRESCENT_CUT: Final[tuple[float, float, float]] = (0.45, 0.0, 0.8)  # cut disc (cu, cv, r)


def _regular(k: int, r: float = 1.0, start_deg: float = -90.0) -> np.ndarray:
    a = np.deg2rad(start_deg) + 2 * np.pi * np.arange(k) / k
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


def _star(points: int = 5, outer: float = 1.0, inner: float = 0.42) -> np.ndarray:
    a = np.deg2rad(-90.0) + np.pi * np.arange(2 * points) / points
    r = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


def _heart(k: int = 28) -> np.ndarray:
    # The classic parametric heart (x = 16 sin^3 t, y = 13 cos t - 5 cos 2t - 2 cos 3t - cos 4t),
    # flipped so the point is down (y grows downwards), centred and scaled into the unit disc.
    t = 2 * np.pi * np.arange(k) / k
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    pts = np.stack([x, y], axis=1)
    pts -= (pts.max(0) + pts.min(0)) / 2
    return pts / np.sqrt((pts**2).sum(1)).max()


def _circle_pts(cu: float, cv: float, r: float, a0: float, a1: float, k: int) -> np.ndarray:
    a = np.linspace(a0, a1, k)
    return np.stack([cu + r * np.cos(a), cv + r * np.sin(a)], axis=1)


def _crescent_outline(k: int = 48) -> np.ndarray:
    """Polygon of the crescent: the unit disc minus the cut disc (used for outlines only)."""
    cu, _, rc = _CRESCENT_CUT
    # Intersection of u^2+v^2=1 and (u-cu)^2+v^2=rc^2: u = (1 - rc^2 + cu^2) / (2 cu).
    ui = (1 - rc**2 + cu**2) / (2 * cu)
    vi = np.sqrt(1 - ui**2)
    a_out = np.arctan2(vi, ui)
    # Outer arc: counter-clockwise from the upper intersection through u = -1 to the lower one.
    outer = _circle_pts(0, 0, 1.0, a_out, 2 * np.pi - a_out, k)
    # Inner arc: back along the cut circle, through its leftmost point (cu - rc, 0).
    b = np.arctan2(-vi, ui - cu)  # angle of the lower intersection seen from the cut centre
    inner = _circle_pts(cu, 0, rc, 2 * np.pi + b, -b, k)
    return np.concatenate([outer, inner[1:-1]], axis=0)


_ARROW: Final[np.ndarray] = np.array(
    [
        [-0.95, -0.22],
        [0.15, -0.22],
        [0.15, -0.62],
        [0.95, 0.0],
        [0.15, 0.62],
        [0.15, 0.22],
        [-0.95, 0.22],
    ]
)
_CROSS: Final[np.ndarray] = np.array(
    [
        [-0.28, -0.95],
        [0.28, -0.95],
        [0.28, -0.28],
        [0.95, -0.28],
        [0.95, 0.28],
        [0.28, 0.28],
        [0.28, 0.95],
        [-0.28, 0.95],
        [-0.28, 0.28],
        [-0.95, 0.28],
        [-0.95, -0.28],
        [-0.28, -0.28],
    ]
)
_SQUARE: Final[np.ndarray] = np.array([[-0.7, -0.7], [0.7, -0.7], [0.7, 0.7], [-0.7, 0.7]])

# Canonical polygons of every shape (even-odd rule across a shape's list of rings).
_POLYGONS: Final[dict[str, list[np.ndarray]]] = {
    "circle": [_regular(64)],
    "square": [_SQUARE],
    "triangle": [_regular(3)],
    "star": [_star()],
    "cross": [_CROSS],
    "ring": [_regular(64), _regular(64, _RING_INNER)],
    "hexagon": [_regular(6, start_deg=0.0)],
    "crescent": [_crescent_outline()],
    "arrow": [_ARROW],
    "heart": [_heart()],
}


def _inside_polygon(u: np.ndarray, v: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd (crossing number) point-in-polygon test on arrays of canonical points.

    A horizontal ray from ``(u, v)`` to ``+inf`` crosses edge ``(p1, p2)`` when ``v`` lies
    between the edge's end ordinates and ``u`` is left of the crossing point
    ``u1 + (v - v1) (u2 - u1) / (v2 - v1)``; the point is inside when the count is odd.
    """
    inside = np.zeros(u.shape, dtype=bool)
    k = len(poly)
    for i in range(k):
        u1, v1 = poly[i]
        u2, v2 = poly[(i + 1) % k]
        if v1 == v2:
            continue  # a horizontal edge is never crossed by a horizontal ray
        straddles = (v1 > v) != (v2 > v)
        u_cross = u1 + (v - v1) * ((u2 - u1) / (v2 - v1))
        inside ^= straddles & (u < u_cross)
    return inside


def _inside_circle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u * u + v * v <= 1.0


def _inside_ring(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r2 = u * u + v * v
    return (r2 <= 1.0) & (r2 > _RING_INNER**2)


def _inside_crescent(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    cu, cv, rc = _CRESCENT_CUT
    return (u * u + v * v <= 1.0) & ((u - cu) ** 2 + (v - cv) ** 2 > rc * rc)


def _inside_square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) <= _SQUARE[1, 0]


def _inside_cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    w, l = _CROSS[1, 0], _CROSS[3, 0]  # arm half-width, arm half-length
    return (np.maximum(au, av) <= l) & (np.minimum(au, av) <= w)


def _polygon_test(name: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    poly = _POLYGONS[name][0]
    return lambda u, v: _inside_polygon(u, v, poly)


# Membership tests used for rendering: analytic where exact and cheap, polygons otherwise.
MEMBERSHIP: Final[dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    "circle": _inside_circle,
    "ring": _inside_ring,
    "crescent": _inside_crescent,
    "square": _inside_square,
    "cross": _inside_cross,
    **{n: _polygon_test(n) for n in ("triangle", "star", "hexagon", "arrow", "heart")},
}


def shape_outline(
    label: int, centre: tuple[float, float], scale: float, angle: float
) -> list[np.ndarray]:
    """Polygons of a class shape placed in the image, in pixel coordinates.

    Args:
        label: class index into :data:`SYNTHETIC_CLASSES`.
        centre: ``(x, y)`` of the shape centre in pixels (pixel ``(i, j)`` centre is
            ``(j + 0.5, i + 0.5)``).
        scale: radius of the shape's bounding disc in pixels.
        angle: rotation in radians (``P = centre + scale * R(angle) p``).

    Returns:
        List of ``(K, 2)`` float arrays of ``(x, y)`` vertices; combine with the even-odd rule
        (the ring has an outer and an inner polygon). Circles and arcs are 48-64-gons.
    """
    name = SYNTHETIC_CLASSES[label]
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return [np.asarray(centre, dtype=float) + scale * (p @ rot.T) for p in _POLYGONS[name]]
