"""Painting, erasing and boxing a mask with the mouse on the main image view, as a user would.

The mouse is driven with ``QTest`` on the view's viewport at the screen positions of known image
pixels. References are independent: the painted mask is compared with disks / capsules built
here with numpy from the definition ``(col - x)^2 + (row - y)^2 <= r^2``, a box with a slice,
and the SMM shown with :func:`inspector.core.metrics.smm` of the map on screen and that mask.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from gui_helpers import loaded  # noqa: E402
from PySide6.QtCore import QRectF, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from inspector.core.metrics import localisation_metrics, smm  # noqa: E402
from inspector.gui.image_view import segment_pixels  # noqa: E402

LEFT, RIGHT = Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton
NOMOD = Qt.KeyboardModifier.NoModifier


def _disk(size: int, x: int, y: int, r: int) -> np.ndarray:
    rows, cols = np.mgrid[:size, :size]
    return (cols - x) ** 2 + (rows - y) ** 2 <= r * r


def _capsule(size: int, x0: int, x1: int, y: int, r: int) -> np.ndarray:
    """Pixels within r of the horizontal segment from (x0, y) to (x1, y), x0 <= x1: the nearest
    integer point of the segment to column c is clip(c, x0, x1)."""
    rows, cols = np.mgrid[:size, :size]
    nearest = np.clip(cols, x0, x1)
    return (cols - nearest) ** 2 + (rows - y) ** 2 <= r * r


def _at(window, x: int, y: int):
    """The viewport point over the centre of image pixel (x, y)."""
    return window.image_view.pixel_to_viewport(x + 0.5, y + 0.5).toPoint()


def _stroke(window, points, button=LEFT) -> None:
    vp = window.image_view.viewport()
    QTest.mousePress(vp, button, NOMOD, _at(window, *points[0]))
    for p in points[1:]:
        QTest.mouseMove(vp, _at(window, *p))
    QTest.mouseRelease(vp, button, NOMOD, _at(window, *points[-1]))


def _expect_smm(qtbot, window, expected_mask: np.ndarray) -> None:
    """The window's SMM, its status-bar label and the masks panel's metrics all equal the core's
    SMM of the map on screen and the expected mask."""
    full = window.last_render.full
    t = window.last_render.settings.smm_threshold
    ref = smm(full, expected_mask, t)
    assert window.last_render.smm == pytest.approx(ref)
    assert window.smm_label.text() == f"SMM {ref:.3f}"
    panel = window.panels["masks"]
    qtbot.waitUntil(
        lambda: panel.metrics_view.metrics().get("smm") == pytest.approx(ref), timeout=5000
    )
    others = localisation_metrics(full, expected_mask, t)
    assert panel.metrics_view.metrics()["relevance_mass"] == pytest.approx(others["relevance_mass"])
    assert panel.metrics_view.smm_text() == f"SMM@{t:.2f}: {ref:.4f}"


@pytest.fixture
def painter(qtbot, window, files):
    loaded(qtbot, window, files)
    window.extra_docks["masks"].show()
    window.extra_docks["masks"].raise_()
    window.panels["masks"].clear()  # img0 came with its mask: start from none
    assert window.mask is None and window.image_view.outline_path().isEmpty()
    return window


def test_brush_paints_and_erases_disks_with_live_smm(qtbot, painter):
    window = painter
    panel = window.panels["masks"]
    calls = []
    window.loaded.model.forward_with_attention = lambda *a, **k: calls.append(1)
    renders = window.render_count
    # The tool chosen in the masks panel drives the image view and the toolbar.
    qtbot.mouseClick(panel.tool_buttons["brush"], LEFT)
    assert window.image_view.tool == "brush" and window.tool_actions["brush"].isChecked()
    panel.radius_spin.setValue(3)
    size = window.image.display.shape[0]

    with qtbot.waitSignal(window.maskChanged, timeout=5000):
        _stroke(window, [(10, 12)])  # a click: one disk
    expected = _disk(size, 10, 12, 3)
    np.testing.assert_array_equal(window.mask, expected)
    _expect_smm(qtbot, window, expected)

    # A drag in several mouse moves paints the whole segment, with no gaps between the events.
    _stroke(window, [(20, 40), (24, 40), (29, 40), (35, 40)])
    expected = expected | _capsule(size, 20, 35, 40, 3)
    np.testing.assert_array_equal(window.mask, expected)
    _expect_smm(qtbot, window, expected)

    # The outline follows the mask: its bounding box is the mask's, in image pixels.
    rows, cols = np.nonzero(expected)
    box = QRectF(cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1)
    assert window.image_view.outline_path().boundingRect() == box

    # A right drag erases; so does a left drag with the eraser on (toolbar action).
    _stroke(window, [(10, 12)], button=RIGHT)
    expected = expected & ~_disk(size, 10, 12, 3)
    np.testing.assert_array_equal(window.mask, expected)
    window.erase_action.trigger()
    assert panel.erase_button.isChecked()
    _stroke(window, [(33, 40)])
    expected = expected & ~_disk(size, 33, 40, 3)
    np.testing.assert_array_equal(window.mask, expected)
    _expect_smm(qtbot, window, expected)
    np.testing.assert_array_equal(panel.mask(), expected)
    # Painting changes the mask and the metrics, never the map: no model run, no new render.
    assert calls == [] and window.render_count == renders


def test_box_tool_draws_a_rectangle_and_clips_to_the_image(qtbot, painter):
    window = painter
    window.tool_actions["box"].trigger()
    assert window.image_view.tool == "box" and window.panels["masks"].tool() == "box"
    size = window.image.display.shape[0]
    _stroke(window, [(30, 25), (20, 10), (8, 5)])  # dragged up-left: corners in any order
    expected = np.zeros((size, size), bool)
    expected[5:26, 8:31] = True
    np.testing.assert_array_equal(window.mask, expected)
    _expect_smm(qtbot, window, expected)
    # A drag that leaves the image is clipped to it.
    vp = window.image_view.viewport()
    QTest.mousePress(vp, LEFT, NOMOD, _at(window, size - 5, size - 6))
    QTest.mouseRelease(vp, LEFT, NOMOD, _at(window, size + 20, size + 20))
    expected = np.zeros((size, size), bool)
    expected[size - 6 :, size - 5 :] = True
    np.testing.assert_array_equal(window.mask, expected)


def test_query_tool_clicks_pick_the_query_and_never_paint(qtbot, painter):
    window = painter
    window.set_tool("brush")
    _stroke(window, [(5, 5)])
    assert window.current_settings().map.query == 0  # the brush did not pick a query patch
    window.set_tool("query")
    panel = window.panels["masks"]
    before = panel.mask()
    patch = window.image.display.shape[0] // window.capture.grid_size[1]
    with qtbot.waitSignal(window.overlayUpdated, timeout=5000):
        qtbot.mouseClick(
            window.image_view.viewport(), LEFT, NOMOD, _at(window, 2 * patch + 1, 3 * patch + 1)
        )
    cols = window.capture.grid_size[1]
    assert window.current_settings().map.query == window.capture.num_prefix_tokens + 3 * cols + 2
    np.testing.assert_array_equal(panel.mask(), before)


def test_a_mask_file_is_the_start_of_painting(qtbot, window, files):
    """The mask found beside the image shows in the masks panel, so a stroke adds to it."""
    loaded(qtbot, window, files)
    panel = window.panels["masks"]
    start = window.mask.copy()
    np.testing.assert_array_equal(panel.mask(), start)
    window.set_tool("brush")
    panel.radius_spin.setValue(2)
    _stroke(window, [(1, 1)])
    np.testing.assert_array_equal(window.mask, start | _disk(start.shape[0], 1, 1, 2))


def test_segment_pixels_has_no_gaps():
    for a, b in (((0, 0), (7, 3)), ((5, 5), (-4, 9)), ((2, 2), (2, 2))):
        pts = np.vstack([[a], segment_pixels(a, b)])
        assert tuple(pts[-1]) == b
        steps = np.abs(np.diff(pts, axis=0)).max(axis=1)
        assert (steps <= 1).all()  # 8-connected: every pixel touches the previous one
