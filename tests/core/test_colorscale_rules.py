"""The scaling rules of the colour bars (issue 11): per map, shared across the grid, shared
across the compare view, against hand-built cells and a float64 recomputation."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.core.colorscale import Scale, grid_scales, recolour, tile_scales
from inspector.core.postprocess import overlay


def _raw(rng, layers=3, heads=2, rows=4, cols=4) -> np.ndarray:
    raw = rng.random((layers, heads + 2, rows, cols))
    raw[:, heads + 1] *= 5.0  # rollout weights live on another scale
    return raw


def test_per_map_spans_each_cells_own_min_and_max():
    raw = _raw(np.random.default_rng(0))
    g = grid_scales(raw, heads=2, rule="per-map")
    assert not g.shared
    for i in range(raw.shape[0]):
        for j in range(raw.shape[1]):
            cell = raw[i, j]
            assert g.lo[i, j] == cell.min() and g.hi[i, j] == cell.max()
            np.testing.assert_allclose(
                g.unit[i, j], (cell - cell.min()) / (cell.max() - cell.min()), atol=1e-6
            )
            assert g.unit[i, j].min() == 0.0 and g.unit[i, j].max() == pytest.approx(1.0)


@pytest.mark.parametrize("rule", ["grid", "compare"])
def test_shared_rule_gives_heads_one_range_and_rollout_another(rule):
    raw = _raw(np.random.default_rng(1))
    g = grid_scales(raw, heads=2, rule=rule)
    assert g.shared
    att, rol = raw[:, :3], raw[:, 3]
    assert np.all(g.lo[:, :3] == att.min()) and np.all(g.hi[:, :3] == att.max())
    assert np.all(g.lo[:, 3] == rol.min()) and np.all(g.hi[:, 3] == rol.max())
    # The same value in two head cells gets the same colour: heads are comparable.
    np.testing.assert_allclose(g.unit[:, :3], (att - att.min()) / np.ptp(att), atol=1e-6)
    assert g.cell(0, 1) == Scale(att.min(), att.max())


def test_constant_cell_is_colour_zero_not_nan():
    raw = np.zeros((1, 3, 2, 2))
    raw[0, 0] = 0.25
    g = grid_scales(raw, heads=1, rule="per-map")
    assert np.all(g.unit == 0.0) and g.cell(0, 0).constant


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="unknown scaling"):
        grid_scales(np.zeros((1, 3, 2, 2)), heads=1, rule="global")


def test_tile_scales_share_only_under_compare():
    a, b = np.array([[0.0, 1.0]]), np.array([[2.0, 6.0]])
    assert tile_scales([a, None, b], "per-map") == [Scale(0.0, 1.0), None, Scale(2.0, 6.0)]
    assert tile_scales([a, b], "grid") == [Scale(0.0, 1.0), Scale(2.0, 6.0)]
    assert tile_scales([a, None, b], "compare") == [Scale(0.0, 6.0), None, Scale(0.0, 6.0)]


def test_recolour_with_own_range_is_the_min_max_overlay():
    rng = np.random.default_rng(2)
    display = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    values = rng.random((8, 8)).astype(np.float32) * 3 + 1
    own = Scale(float(values.min()), float(values.max()))
    ref = (values.astype(np.float64) - values.min()) / np.ptp(values)
    expected = overlay(display, ref.astype(np.float32), cmap="viridis", opacity=0.6)
    np.testing.assert_array_equal(recolour(display, values, own, "viridis", 0.6), expected)
    # A wider (shared) range darkens this tile's top colour: not the own-range overlay.
    wide = recolour(display, values, Scale(0.0, 10.0), "viridis", 0.6)
    assert not np.array_equal(wide, expected)
