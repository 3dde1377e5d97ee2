"""A layout that fits (issue 11, items 7, 8 and 9), checked as a user sees it: the window at
1280 x 720 and 1920 x 1080, tabs switched, the wheel turned over the masks panel; geometry is
read from the widgets (sizes, size hints, scroll bars)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QWheelEvent  # noqa: E402
from PySide6.QtWidgets import QAbstractButton, QApplication, QLabel, QWidget  # noqa: E402

from inspector.gui.predictions import PREDICTIONS_SHOWN  # noqa: E402


def _settle(qtbot, window, w: int, h: int) -> None:
    window.resize(w, h)
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: window.width() == w and window.height() == h, timeout=5000)
    QApplication.processEvents()


def _clipped(panel: QWidget) -> list[str]:
    """Visible labels and buttons whose text does not fit the room they got."""
    bad = []
    for ch in panel.findChildren(QWidget):
        if not isinstance(ch, (QLabel, QAbstractButton)) or not ch.isVisible() or not ch.text():
            continue
        if isinstance(ch, QLabel) and ch.wordWrap():
            fits = ch.heightForWidth(ch.width()) <= ch.height()
        else:
            fits = ch.sizeHint().width() <= ch.width() and ch.sizeHint().height() <= ch.height()
        if not fits:
            bad.append(f"{type(ch).__name__} {ch.text()!r}: {ch.sizeHint()} in {ch.size()}")
    return bad


def test_each_dock_returns_to_its_own_width(qtbot, window):
    _settle(qtbot, window, 1280, 720)
    explorer, training = window.explorer_dock, window.extra_docks["training"]
    qtbot.waitUntil(lambda: explorer.isVisible() and explorer.width() > 0, timeout=5000)
    narrow = explorer.width()
    assert narrow <= 320
    # The image keeps most of the window.
    assert window.central_tabs.width() >= 0.5 * window.width()
    training.raise_()
    qtbot.waitUntil(lambda: training.width() >= 0.45 * window.width(), timeout=5000)
    explorer.raise_()
    qtbot.waitUntil(lambda: abs(explorer.width() - narrow) <= 2, timeout=5000)
    assert window.central_tabs.width() >= 0.5 * window.width()
    # A width the user set is the dock's own from then on.
    window.resizeDocks([explorer], [260], Qt.Orientation.Horizontal)
    qtbot.waitUntil(lambda: abs(explorer.width() - 260) <= 2, timeout=5000)
    wide = None
    training.raise_()
    qtbot.waitUntil(lambda: training.width() >= 0.45 * window.width(), timeout=5000)
    wide = training.width()
    explorer.raise_()
    qtbot.waitUntil(lambda: abs(explorer.width() - 260) <= 2, timeout=5000)
    training.raise_()
    qtbot.waitUntil(lambda: abs(training.width() - wide) <= 2, timeout=5000)


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)])
def test_masks_panel_fits_without_clipping(qtbot, window, size):
    _settle(qtbot, window, *size)
    dock = window.extra_docks["masks"]
    dock.raise_()
    panel = window.panels["masks"]
    scroll = dock.widget()
    qtbot.waitUntil(lambda: panel.isVisible() and panel.width() > 0, timeout=5000)
    # Raised, the masks tab gets room of its own under the method panel (not the few rows the
    # predictions need), and the predictions get their height back when raised again.
    qtbot.waitUntil(lambda: dock.height() >= 0.4 * window.height(), timeout=5000)
    QApplication.processEvents()
    assert not scroll.horizontalScrollBar().isVisible()
    assert panel.width() <= scroll.viewport().width()
    assert _clipped(panel) == []
    assert panel.tool_buttons["brush"].width() >= panel.tool_buttons["brush"].sizeHint().width()
    assert panel.box_button.width() >= panel.box_button.sizeHint().width()
    value = panel.metrics_view._value_labels["pointing_game"]
    assert value.width() >= value.fontMetrics().horizontalAdvance("undefined")
    # SMM is explained in text on the panel, not only in a tooltip.
    help_label = panel.metrics_view.smm_help
    assert help_label.isVisible() and "IoU" in help_label.text() and "mask" in help_label.text()
    window.predictions_dock.raise_()
    qtbot.waitUntil(
        lambda: window.predictions_dock.height() <= 0.45 * window.height(), timeout=5000
    )


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)])
def test_predictions_show_the_top_rows_and_the_method_panel_keeps_room(qtbot, window, files, size):
    from gui_helpers import loaded

    loaded(qtbot, window, files)
    _settle(qtbot, window, *size)
    table = window.predictions.table
    assert table.rowCount() == PREDICTIONS_SHOWN  # every class of the 10-class model

    # The top five at any size; at 1920 x 1080 the dock's height shows all ten (no empty space).
    shown = PREDICTIONS_SHOWN if size[1] >= 1080 else 5

    def all_rows_shown() -> bool:
        viewport = table.viewport().rect()
        return all(
            viewport.contains(table.visualRect(table.model().index(r, 1))) for r in range(shown)
        )

    qtbot.waitUntil(all_rows_shown, timeout=5000)
    # With the masks tab raised under it, the method panel keeps its first rows visible.
    window.extra_docks["masks"].raise_()
    qtbot.waitUntil(
        lambda: window.extra_docks["masks"].height() >= 0.4 * window.height(), timeout=5000
    )
    QApplication.processEvents()
    assert window.controls_dock.height() >= 0.35 * window.height()
    window.predictions_dock.raise_()
    qtbot.waitUntil(all_rows_shown, timeout=5000)


def _wheel(widget: QWidget, steps: int = 1) -> None:
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(
        pos,
        widget.mapToGlobal(pos),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def test_wheel_over_an_unfocused_spin_box_leaves_its_value(qtbot, window):
    _settle(qtbot, window, 1280, 720)
    dock = window.extra_docks["masks"]
    dock.raise_()
    panel = window.panels["masks"]
    qtbot.waitUntil(panel.isVisible, timeout=5000)
    spin, combo = panel.radius_spin, panel.variant_combo
    assert spin.focusPolicy() == Qt.FocusPolicy.StrongFocus
    before, before_combo = spin.value(), combo.currentIndex()
    window.image_view.setFocus()
    _wheel(spin, 3)
    _wheel(combo, -1)
    assert spin.value() == before and combo.currentIndex() == before_combo
    # Once the user clicks into it, the wheel does change it.
    window.activateWindow()
    spin.setFocus(Qt.FocusReason.MouseFocusReason)
    qtbot.waitUntil(spin.hasFocus, timeout=5000)
    _wheel(spin, 3)
    assert spin.value() == before + 3


def test_compare_dialog_opens_in_a_checkpoints_folder(files):
    from inspector.gui.compare_view import dialog_folder
    from inspector.paths import DEFAULT_CHECKPOINT

    assert dialog_folder(files["ckpt"]) == str(files["ckpt"].parent)
    expected = DEFAULT_CHECKPOINT.parent
    assert dialog_folder(None) == str(expected if expected.is_dir() else expected.cwd())


def test_compare_tab_at_1280x720_square_tiles_header_and_scales(qtbot, window, files, tmp_path):
    import torch
    from gui_helpers import loaded

    from inspector.core.checkpoint import Checkpoint, save_checkpoint
    from inspector.core.config import Preprocess, preset
    from inspector.core.explain import capture_image, load_image, open_model
    from inspector.core.model import VisionTransformer
    from inspector.core.postprocess import upsample
    from inspector.core.saliency import compute_map

    torch.manual_seed(3)
    model = VisionTransformer(preset("baseline"))
    with torch.no_grad():
        for blk in model.blocks:
            blk.attn.qkv.weight.mul_(4.0)
    names = [f"shape{i}" for i in range(10)]
    other = save_checkpoint(
        tmp_path / "a-rather-long-checkpoint-name-that-must-wrap.pt",
        Checkpoint.from_model(model, class_names=names, preprocess=Preprocess()),
    )
    _settle(qtbot, window, 1280, 720)
    loaded(qtbot, window, files)
    compare = window.panels["compare"]
    with qtbot.waitSignal(compare.updated, timeout=30_000):
        window.compare_checkpoints([files["ckpt"], other])
    assert compare.wait_idle(30_000)
    qtbot.waitUntil(lambda: compare.isVisible() and compare.tile_side() > 0, timeout=5000)
    assert window.central_tabs.currentWidget() is compare
    assert compare.width() >= 0.5 * window.width()
    for tile in compare.cells():
        assert tile.plot.width() == tile.plot.height() == compare.tile_side()
        assert tile.plot.width() >= 200  # two models at 1280 x 720: large squares
    assert _clipped(compare) == []
    header = compare.header.text()
    # The target class in the header: the name when both models explain the same class.
    targets = {r.target_name for r in compare.results()}
    if len(targets) == 1:
        assert f"target predicted class ({targets.pop()})" in header
    else:
        assert "target each model's predicted class" in header

    # Independent values: each model's map in its own units, upsampled to its input.
    s = window.current_settings()
    values = []
    for path in (files["ckpt"], other):
        lm = open_model(path)
        prep = load_image(files["img0"], lm)
        raw = compute_map(capture_image(lm, prep), settings=s.map, rescale=False)
        values.append(upsample(raw.astype(np.float64), prep.display.shape[:2]))
    # Per map: each tile's own bar spans its own map.
    for tile, v in zip(compare.cells(), values, strict=True):
        assert tile.bar.isVisible()
        assert tile.bar.scale.lo == pytest.approx(v.min(), rel=1e-4, abs=1e-7)
        assert tile.bar.scale.hi == pytest.approx(v.max(), rel=1e-4)
    assert not compare.bar.isVisible()
    # Shared across the compare view: one bar beside the tiles, the range of both maps.
    with qtbot.waitSignal(compare.updated, timeout=30_000):
        window.controls.scaling.setCurrentIndex(window.controls.scaling.findData("compare"))
    assert compare.wait_idle(30_000)
    qtbot.waitUntil(compare.bar.isVisible, timeout=5000)
    lo, hi = min(v.min() for v in values), max(v.max() for v in values)
    assert compare.bar.scale.lo == pytest.approx(lo, rel=1e-4, abs=1e-7)
    assert compare.bar.scale.hi == pytest.approx(hi, rel=1e-4)
    assert not any(t.bar.isVisible() for t in compare.cells())
    assert "one range for all tiles" in compare.header.text()
    for tile in compare.cells():
        assert tile.plot.width() == tile.plot.height()
