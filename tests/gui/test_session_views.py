"""The window's widgets subscribe to the Qt-free session (issue 11): a change made to the
session, not to a widget, reaches the outline, SMM, masks panel, labels and predictions."""

from __future__ import annotations

import numpy as np
from gui_helpers import loaded

from inspector.core.metrics import smm
from inspector.gui.predictions import PREDICTIONS_SHOWN  # noqa: E402


def test_a_mask_set_on_the_session_reaches_every_view(qtbot, window, files):
    loaded(qtbot, window, files)
    window.extra_docks["masks"].show()
    s = window.session
    h, w = s.original_shape()
    m = np.zeros((h, w), bool)
    m[: h // 2, : w // 3] = True
    with qtbot.waitSignal(window.maskChanged, timeout=5_000):
        assert s.set_mask(m) is None
    assert window.wait_until_idle(10_000)
    # The outline the user sees is the display-geometry mask, the panel paints on it, and the
    # status bar's SMM is the map on screen against it.
    assert not window.image_view.outline_path().isEmpty()
    np.testing.assert_array_equal(window.panels["masks"].mask(), s.mask)
    want = smm(window.last_render.full, s.mask, window.current_settings().smm_threshold)
    assert window.smm_label.text() == f"SMM {want:.3f}"
    with qtbot.waitSignal(window.maskChanged, timeout=5_000):
        s.clear_mask()
    assert window.image_view.outline_path().isEmpty()
    assert window.smm_label.text() == ""


def test_labels_and_predictions_follow_the_session(qtbot, window, files):
    loaded(qtbot, window, files)
    s = window.session
    assert window.image_label.text() == files["img0"].name
    assert window.model_label.text().startswith(s.model.name)
    assert window.predictions.classes() == [c for c, _ in s.capture.top_k(PREDICTIONS_SHOWN)]
    first = s.capture
    with qtbot.waitSignal(window.captureReady, timeout=10_000):
        window.open_image(files["img1"])
    assert window.wait_until_idle(10_000)
    assert s.capture is not first and s.image_path == files["img1"]
    assert window.image_label.text() == files["img1"].name
    assert window.predictions.classes() == [c for c, _ in s.capture.top_k(PREDICTIONS_SHOWN)]
