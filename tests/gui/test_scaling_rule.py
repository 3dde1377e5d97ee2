"""The user's scaling rule and the colour bars under the head/layer grid (issue 11, item 2):
switching the rule in the Method panel changes the grid's colours and the bars' values, which
equal the cells' real min / max (explorer_maps recomputed here, min / max in float64)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from gui_helpers import loaded as _loaded  # noqa: E402

from inspector.core.explain import explorer_maps  # noqa: E402
from inspector.core.postprocess import colorize  # noqa: E402


def _choose(combo, value: str) -> None:
    combo.setCurrentIndex(combo.findData(value))  # as picking the entry in the combo box


def _grid_ready(qtbot, window, rule: str):
    grid = window.explorer
    qtbot.waitUntil(
        lambda: grid.scales is not None and grid.scales.shared == (rule != "per-map"),
        timeout=10_000,
    )
    return grid


def _cell_rgba(grid, layer: int, j: int) -> np.ndarray:
    lay = grid.layout_
    y0, x0 = lay.y0[layer], lay.x0[j]
    return grid.mosaic[y0 : y0 + lay.rows, x0 : x0 + lay.cols]


def test_grid_bars_follow_the_scaling_rule(qtbot, window, files):
    _loaded(qtbot, window, files)
    assert window.current_settings().scaling == "per-map"  # default rule
    grid = _grid_ready(qtbot, window, "per-map")
    m = window.current_settings().map
    raw = explorer_maps(
        window.capture,
        query=m.query,
        fusion=m.fusion,
        discard_ratio=m.discard_ratio,
        residual=m.residual,
        legacy_normalisation=m.legacy_normalisation,
    ).raw.astype(np.float64)
    H = raw.shape[1] - 2
    # Per map: the bar shows one cell's own range (the selected or hovered one), and every cell
    # spans its own min..max, like the main view.
    layer, j = grid.bar_cell()
    assert grid.bar.isVisible() and not grid.rollout_bar.isVisible()
    assert grid.bar.scale.lo == pytest.approx(raw[layer, j].min(), rel=1e-5, abs=1e-9)
    assert grid.bar.scale.hi == pytest.approx(raw[layer, j].max(), rel=1e-5)
    cell = raw[0, 1]
    expected = colorize(((cell - cell.min()) / np.ptp(cell)).astype(np.float32), "viridis")
    diff = np.abs(_cell_rgba(grid, 0, 1).astype(int) - expected.astype(int))
    assert diff.max() <= 1

    _choose(window.controls.scaling, "grid")
    grid = _grid_ready(qtbot, window, "grid")
    assert grid.bar.isVisible() and grid.rollout_bar.isVisible()
    att, rollout = raw[:, : H + 1], raw[:, H + 1]
    assert grid.bar.scale.lo == pytest.approx(att.min(), abs=1e-7)
    assert grid.bar.scale.hi == pytest.approx(att.max(), rel=1e-5)
    assert grid.rollout_bar.scale.lo == pytest.approx(rollout.min(), abs=1e-7)
    assert grid.rollout_bar.scale.hi == pytest.approx(rollout.max(), rel=1e-5)
    assert grid.bar.labels()[2] == f"{grid.bar.scale.hi:.3g}"
    shared = ((cell - att.min()) / np.ptp(att)).astype(np.float32)
    diff = np.abs(_cell_rgba(grid, 0, 1).astype(int) - colorize(shared, "viridis").astype(int))
    assert diff.max() <= 1

    # The colormap follows the controls too (jet stays available).
    window.controls.colormap.setCurrentText("jet")
    qtbot.waitUntil(lambda: grid.colormap == "jet", timeout=10_000)
    assert grid.bar.colormap == "jet"
    diff = np.abs(_cell_rgba(grid, 0, 1).astype(int) - colorize(shared, "jet").astype(int))
    assert diff.max() <= 1

    _choose(window.controls.scaling, "per-map")
    grid = _grid_ready(qtbot, window, "per-map")
    assert not grid.rollout_bar.isVisible()
