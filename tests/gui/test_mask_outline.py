"""The mask outline drawn over the image: exactly the pixel edges between mask and background."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from inspector.gui.image_view import mask_outline_path  # noqa: E402


def ref_edges(mask: np.ndarray) -> set[tuple[tuple[int, int], tuple[int, int]]]:
    """Unit edges ((x0, y0), (x1, y1)) between a mask pixel and a non-mask pixel or the border,
    found with loops over the pixels."""
    H, W = mask.shape
    inside = lambda r, c: 0 <= r < H and 0 <= c < W and bool(mask[r, c])  # noqa: E731
    edges = set()
    for r in range(H + 1):
        for c in range(W):
            if inside(r - 1, c) != inside(r, c):  # horizontal edge at y = r
                edges.add(((c, r), (c + 1, r)))
    for r in range(H):
        for c in range(W + 1):
            if inside(r, c - 1) != inside(r, c):  # vertical edge at x = c
                edges.add(((c, r), (c, r + 1)))
    return edges


def path_edges(path) -> set[tuple[tuple[int, int], tuple[int, int]]]:
    """The unit edges the path's straight segments cover (each segment split at integers)."""
    edges = set()
    n = path.elementCount()
    assert n % 2 == 0
    for i in range(0, n, 2):
        a, b = path.elementAt(i), path.elementAt(i + 1)
        x0, y0, x1, y1 = int(a.x), int(a.y), int(b.x), int(b.y)
        assert (x0, y0, x1, y1) == (a.x, a.y, b.x, b.y) and (x0 == x1 or y0 == y1)
        if y0 == y1:
            edges.update(((x, y0), (x + 1, y0)) for x in range(min(x0, x1), max(x0, x1)))
        else:
            edges.update(((x0, y), (x0, y + 1)) for y in range(min(y0, y1), max(y0, y1)))
    return edges


def test_outline_covers_exactly_the_boundary_edges(qapp):
    rng = np.random.default_rng(0)
    for _ in range(12):
        mask = rng.random((13, 11)) < rng.random()
        assert path_edges(mask_outline_path(mask)) == ref_edges(mask)
    # a box is four segments (consecutive edges on one line are merged)
    box = np.zeros((20, 30), bool)
    box[4:12, 3:25] = True
    path = mask_outline_path(box)
    assert path.elementCount() == 8 and path_edges(path) == ref_edges(box)
    assert mask_outline_path(np.zeros((5, 5), bool)).isEmpty()
