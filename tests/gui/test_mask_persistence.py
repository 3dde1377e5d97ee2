"""A mask the user boxed or painted outlives a change of checkpoint (issue 11 item 5): it is
re-aligned for a model that resizes differently, and comes back exactly as drawn when the
first model is opened again."""

from __future__ import annotations

import numpy as np
import torch
from gui_helpers import CLASSES, loaded
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from inspector.core.checkpoint import Checkpoint, save_checkpoint
from inspector.core.config import Preprocess, preset
from inspector.core.metrics import smm
from inspector.core.model import VisionTransformer

LEFT, NOMOD = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier


def _at(window, x: int, y: int):
    return window.image_view.pixel_to_viewport(x + 0.5, y + 0.5).toPoint()


def _box(window, x0: int, y0: int, x1: int, y1: int) -> None:
    window.tool_actions["box"].trigger()
    vp = window.image_view.viewport()
    QTest.mousePress(vp, LEFT, NOMOD, _at(window, x0, y0))
    QTest.mouseMove(vp, _at(window, x1, y1))
    QTest.mouseRelease(vp, LEFT, NOMOD, _at(window, x1, y1))


def _open(qtbot, window, path) -> None:
    with qtbot.waitSignal(window.captureReady, timeout=20_000):
        window.open_checkpoint(path)
    assert window.wait_until_idle(20_000)


def test_a_boxed_mask_survives_a_model_of_another_size_and_returns_exactly(
    qtbot, window, files, tmp_path
):
    torch.manual_seed(1)
    small = VisionTransformer(preset("baseline", image_size=32))  # 32 px input: half the display
    other = save_checkpoint(
        tmp_path / "small.pt",
        Checkpoint.from_model(small, class_names=CLASSES, preprocess=Preprocess(image_size=32)),
    )
    loaded(qtbot, window, files)
    window.extra_docks["masks"].show()
    window.panels["masks"].clear()
    _box(window, 8, 12, 39, 43)  # display pixels 8..39 x 12..43 of the 64 px display
    drawn = np.zeros((64, 64), bool)
    drawn[12:44, 8:40] = True
    np.testing.assert_array_equal(window.mask, drawn)

    _open(qtbot, window, other)
    assert window.image.display.shape[:2] == (32, 32)
    # The same region of the image, at half the size (the 64 px image of img0 is resized to 32).
    half = np.zeros((32, 32), bool)
    half[6:22, 4:20] = True
    assert window.mask is not None and window.mask.shape == (32, 32)
    assert (window.mask ^ half).sum() <= 2 * (16 + 16)  # at most the edge rows and columns
    # Shown and scored: the outline is drawn and SMM is the core's for the map on screen.
    assert not window.image_view.outline_path().isEmpty()
    full, t = window.last_render.full, window.last_render.settings.smm_threshold
    assert window.smm_label.text() == f"SMM {smm(full, window.mask, t):.3f}"
    # The masks panel paints on the new display, starting from that mask.
    np.testing.assert_array_equal(window.panels["masks"].mask(), window.mask)

    _open(qtbot, window, files["ckpt"])
    np.testing.assert_array_equal(window.mask, drawn)  # exactly as drawn, not resampled twice
