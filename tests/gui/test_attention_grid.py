"""The head/layer explorer: its numbers against independent references, hover and click."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings, Qt  # noqa: E402

from inspector.core.capture import capture  # noqa: E402
from inspector.core.checkpoint import Checkpoint, save_checkpoint  # noqa: E402
from inspector.core.config import Preprocess, ViTConfig, preset  # noqa: E402
from inspector.core.explain import explorer_maps  # noqa: E402
from inspector.core.model import VisionTransformer  # noqa: E402
from inspector.core.saliency import rollout  # noqa: E402
from inspector.gui.attention_grid import AttentionGrid, GridLayout  # noqa: E402


@pytest.fixture(scope="module")
def cap():
    torch.manual_seed(3)
    cfg = ViTConfig(
        image_size=32, patch_size=8, hidden_size=16, depth=3, num_heads=2, num_classes=4
    )
    model = VisionTransformer(cfg).eval()
    with torch.no_grad():
        for blk in model.blocks:
            blk.attn.qkv.weight.mul_(6.0)
    return capture(model, torch.randn(1, 3, 32, 32))


def test_explorer_maps_against_float64_references(cap):
    q = 5
    data = explorer_maps(cap, query=q, fusion="min", discard_ratio=0.3)
    a = cap.attentions.double().numpy()  # (L, h, T, T)
    L, H, T, _ = a.shape
    assert data.maps.shape == (L, H + 2, 4, 4)
    for layer in range(L):
        for h in range(H):
            row = a[layer, h, q, 1:].reshape(4, 4)
            np.testing.assert_allclose(data.raw[layer, h], row, rtol=1e-5)
            np.testing.assert_allclose(data.maps[layer, h], row / row.max(), rtol=1e-5)
            p = a[layer, h, q]
            assert data.entropy[layer, h] == pytest.approx(-(p * np.log(p)).sum(), rel=1e-5)
        fused = a[layer, :, q, 1:].min(axis=0).reshape(4, 4)
        np.testing.assert_allclose(data.raw[layer, H], fused, rtol=1e-5)
        # Rollout of layers 0..layer: the saliency module's own rollout on those layers.
        ref = rollout(a[: layer + 1], fusion="min", discard_ratio=0.3, query=q)
        np.testing.assert_allclose(data.maps[layer, H + 1], ref, rtol=1e-4, atol=1e-6)
    assert np.all(data.entropy <= np.log(T) + 1e-6)


def test_layout_maps_points_to_cells():
    lay = GridLayout(layers=12, heads=12, rows=14, cols=14)
    for layer in (0, 5, 11):
        for j in (0, 7, 11, 12, 13):
            r = lay.cell_rect(layer, j)
            assert lay.cell_at(r.x() + 2.5, r.y() + 13.5) == (layer, j, 13, 2)
    assert lay.cell_at(lay.x0[1] - 0.5, 3) is None  # in the gap between cells
    assert lay.column_kind(12) == "fused" and lay.column_kind(13) == "rollout"


def _move(widget, pos) -> None:
    """A real mouse-move event (QTest's mouseMove only moves the cursor on some platforms)."""
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    local = QPointF(pos)
    event = QMouseEvent(
        QMouseEvent.Type.MouseMove,
        local,
        widget.mapToGlobal(local),
        Qt.MouseButton.NoButton,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, event)


def _shown_grid(qtbot, width: int, height: int) -> AttentionGrid:
    grid = AttentionGrid()
    qtbot.addWidget(grid)
    grid.resize(width, height)
    grid.show()
    qtbot.waitExposed(grid)
    return grid


def test_grid_hover_and_click(qtbot, cap):
    grid = _shown_grid(qtbot, 500, 420)
    data = explorer_maps(cap, query=0, fusion="mean")
    grid.set_data(data, colormap="viridis")
    assert grid.mosaic.shape[:2] == (grid.layout_.height, grid.layout_.width)
    view = grid.plot_widget
    pt = view.mapFromScene(grid.cell_center_scene(2, 1))
    with qtbot.waitSignal(grid.hoverText, timeout=2000) as hover:
        _move(view.viewport(), pt)
    assert f"Layer 2, head 1: entropy {data.entropy[2, 1]:.3f}" in hover.args[0]
    with qtbot.waitSignal(grid.cellClicked, timeout=2000) as click:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pt)
    assert click.args == [2, "head", 1]
    pt = view.mapFromScene(grid.cell_center_scene(1, data.maps.shape[1] - 1))
    with qtbot.waitSignal(grid.cellClicked, timeout=2000) as click:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pt)
    assert click.args == [1, "rollout", -1]


def _painted(widget, item):
    """Where ``item`` is painted, in ``widget``'s (a GraphicsView's) pixels."""
    return widget.mapFromScene(item.mapRectToScene(item.boundingRect())).boundingRect()


def test_a_tall_dock_shows_the_grid_then_the_focused_cell_then_the_entropy(qtbot, cap):
    """Issue 11: at 1920 x 1080 the grid filled a third of its dock's height and left the rest
    empty. Now the grid takes the height its width calls for, the focused cell fills the width
    under it, and the head entropies take what is left."""
    grid = _shown_grid(qtbot, 300, 900)
    data = explorer_maps(cap, query=0, fusion="mean")
    grid.set_data(data)
    qtbot.waitUntil(lambda: grid.entropy_plot.isVisible() and grid.focus.isVisible(), timeout=5000)
    view = grid.plot_widget
    mosaic = _painted(view, grid.image_item)
    vb = grid.plot.getViewBox()
    chrome = view.height() - vb.height()
    # The mosaic spans the view box's width, and the view is no taller than it needs.
    assert mosaic.width() >= 0.95 * vb.width()
    assert view.height() - chrome - mosaic.height() <= 0.05 * mosaic.height() + 4
    # The enlarged cell is the default focus (last layer, fused), pixel for pixel the mosaic's.
    lay = grid.layout_
    layer, j = lay.layers - 1, lay.heads
    crop = grid.mosaic[lay.y0[layer] : lay.y0[layer] + lay.rows, lay.x0[j] : lay.x0[j] + lay.cols]
    np.testing.assert_array_equal(grid.focus.pixels, crop)
    cell = grid.focus.image_rect()
    assert cell.width() >= 0.9 * grid.focus.view_widget.width()
    # The entropy plot shows the core's entropies and takes the rest of the dock.
    np.testing.assert_allclose(grid.entropy_plot.entropy, data.entropy)
    assert grid.entropy_plot.height() >= 130
    used = sum(w.height() for w in (view, grid.focus, grid.entropy_plot))
    assert used >= 0.75 * grid.height()
    # Hovering a head brings it into focus.
    pt = view.mapFromScene(grid.cell_center_scene(1, 0))
    with qtbot.waitSignal(grid.hoverText, timeout=2000):
        _move(view.viewport(), pt)
    crop = grid.mosaic[lay.y0[1] : lay.y0[1] + lay.rows, lay.x0[0] : lay.x0[0] + lay.cols]
    np.testing.assert_array_equal(grid.focus.pixels, crop)
    assert grid.focus.title.text() == "Layer 1, head 0 (hovered)"


def test_a_short_wide_dock_gives_the_grid_all_its_height(qtbot, cap):
    grid = _shown_grid(qtbot, 640, 300)
    grid.set_data(explorer_maps(cap, query=0, fusion="mean"))
    vb = grid.plot.getViewBox()
    qtbot.waitUntil(
        lambda: _painted(grid.plot_widget, grid.image_item).height() >= 0.95 * vb.height(),
        timeout=5000,
    )
    assert not grid.focus.isVisible() and not grid.entropy_plot.isVisible()


def test_clicking_a_cell_selects_layer_and_head_in_the_window(qtbot, tmp_path):
    from PIL import Image

    from inspector.gui.main_window import MainWindow

    torch.manual_seed(0)
    ckpt = Checkpoint.from_model(
        VisionTransformer(preset("baseline")),
        class_names=[str(i) for i in range(10)],
        preprocess=Preprocess(),
    )
    save_checkpoint(tmp_path / "m.pt", ckpt)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    w = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    with qtbot.waitSignal(w.captureReady, timeout=20_000):
        w.open_checkpoint(tmp_path / "m.pt")
        w.open_image(tmp_path / "a.png")
    assert w.wait_until_idle(20_000)
    assert not w.explorer.is_empty()
    view = w.explorer.plot_widget
    pt = view.mapFromScene(w.explorer.cell_center_scene(2, 3))
    with qtbot.waitSignal(w.overlayUpdated, timeout=5000):
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pt)
    m = w.current_settings().map
    assert (m.method, m.layer, m.head) == ("attention", 2, 3)
    assert w.wait_until_idle(5000)
    assert w.explorer.selection.isVisible()
    assert w.explorer.selection.rect().contains(w.explorer.layout_.cell_rect(2, 3).center())
    w.close()
