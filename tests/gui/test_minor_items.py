"""Issue 11, item 14: the folder strip's natural order, a hover readout that follows a control
change under a resting cursor, and a window title that names the run after training."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from gui_helpers import loaded  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import QPointF, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from inspector.core.imageio import natural_key  # noqa: E402


def test_natural_key_orders_numbers_by_value():
    names = ["val_1054.JPEG", "val_23.JPEG", "val_9.JPEG", "Val_100.JPEG", "a.png"]
    assert sorted(names, key=natural_key) == [
        "a.png",
        "val_9.JPEG",
        "val_23.JPEG",
        "Val_100.JPEG",
        "val_1054.JPEG",
    ]


def test_folder_strip_sorts_val_23_before_val_1054(qtbot, window, tmp_path):
    rng = np.random.default_rng(0)
    for n in (1054, 23, 9, 100):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(
            tmp_path / f"val_{n}.png"
        )
    assert window.open_folder(tmp_path) == 4
    assert [p.name for p in window.strip.paths()] == [
        "val_9.png",
        "val_23.png",
        "val_100.png",
        "val_1054.png",
    ]


def _move_to_pixel(view, x: int, y: int) -> None:
    scene = view.image_item.mapToScene(QPointF(x + 0.5, y + 0.5))
    local = QPointF(view.mapFromScene(scene))
    event = QMouseEvent(
        QMouseEvent.Type.MouseMove,
        local,
        view.viewport().mapToGlobal(local),
        Qt.MouseButton.NoButton,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(view.viewport(), event)


def test_hover_readout_follows_a_control_change(qtbot, window, files):
    loaded(qtbot, window, files)
    full = window.last_render.full
    y, x = np.unravel_index(int(np.argmax(full)), full.shape)
    _move_to_pixel(window.image_view, int(x), int(y))
    qtbot.waitUntil(lambda: "saliency" in window.statusBar().currentMessage(), timeout=5000)
    assert f"x {x}, y {y}" in window.statusBar().currentMessage()
    assert f"saliency {full[y, x]:.3f}" in window.statusBar().currentMessage()
    # The cursor rests; the user switches to raw attention of layer 0, head 0.
    with qtbot.waitSignal(window.overlayUpdated, timeout=20_000):
        window.controls.set_layer_head(0, 0)
    assert window.wait_until_idle(20_000)
    new = window.last_render.full[y, x]
    assert f"{new:.3f}" != f"{full[y, x]:.3f}"  # the map under the cursor did change
    message = window.statusBar().currentMessage()
    assert f"x {x}, y {y}" in message and f"saliency {new:.3f}" in message


def test_title_names_the_run_after_training(qtbot, window, files, tmp_path):
    import shutil

    run = tmp_path / "runs" / "baseline-lr3e-4"
    run.mkdir(parents=True)
    best = run / "best.pt"
    shutil.copy(files["ckpt"], best)
    with qtbot.waitSignal(window.modelLoaded, timeout=20_000):
        window.panels["training"].finished.emit(str(best))  # what a finished job emits
    assert window.windowTitle() == "ViT Inspector — baseline-lr3e-4/best.pt"
