"""The map as a figure (issue 11: "black bars are bugs"): the image view takes the image's
aspect ratio, the colour bar stands against its right edge and is as tall, the caption sits
under it, and the width a square image cannot use goes to the head/layer dock or, with
Training raised, to the training panel. Checked on geometry and on the view's pixels."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from gui_helpers import loaded  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from inspector.core.colorscale import scale_of  # noqa: E402
from inspector.gui.map_frame import MapFrame  # noqa: E402
from inspector.gui.window_layout import EXPLORER_WIDTH  # noqa: E402

CANVAS = (32, 33, 36)  # the view's own background: what a band beside the image shows


def _settle(qtbot, window, w: int, h: int) -> None:
    window.resize(w, h)
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: window.width() == w and window.height() == h, timeout=5000)
    QApplication.processEvents()


def _canvas_share(view) -> float:
    """Share of the view's pixels that are its bare background (bands, a dark frame)."""
    img = view.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    w, h, stride = img.width(), img.height(), img.bytesPerLine()
    rgb = np.frombuffer(img.constBits(), np.uint8).reshape(h, stride)[:, : 3 * w]
    rgb = rgb.reshape(h, w, 3).astype(int)
    return float((np.abs(rgb - np.array(CANVAS)).sum(-1) <= 3).mean())


def _check_figure(frame: MapFrame, aspect: float) -> None:
    view = frame.image_view
    bar, caption = frame.color_bar, frame.caption
    assert bar.isVisible() and caption.text()
    assert view.width() / view.height() == pytest.approx(aspect, rel=0.02)
    # The bar against the image's right edge, as tall; the caption right under both.
    assert 0 <= bar.x() - (view.x() + view.width()) <= frame.GAP
    assert bar.y() == view.y() and bar.height() == view.height()
    assert 0 <= caption.y() - (view.y() + view.height()) <= frame.GAP
    assert caption.x() == view.x()
    # The figure lies inside the frame, centred across it.
    assert view.x() >= 0 and bar.x() + bar.width() <= frame.width()
    assert caption.y() + caption.height() <= frame.height()
    left, right = view.x(), frame.width() - (bar.x() + bar.width())
    assert abs(left - right) <= 6
    assert _canvas_share(view) < 0.01  # the image fills its view: no dark band or frame


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)])
def test_a_square_image_fills_its_view_with_the_colour_bar_beside_it(qtbot, window, files, size):
    _settle(qtbot, window, *size)
    loaded(qtbot, window, files)
    qtbot.waitUntil(lambda: window.map_frame.color_bar.isVisible(), timeout=5000)
    _check_figure(window.map_frame, 1.0)
    # The first start gives the head/layer dock what the image leaves beside it: no bands.
    qtbot.waitUntil(lambda: window.map_frame.spare_width() <= 8, timeout=5000)
    if size == (1920, 1080):
        assert window.explorer_dock.width() > EXPLORER_WIDTH + 100
    assert window.explorer_dock.width() <= 0.4 * window.width() + 2


@pytest.mark.parametrize("shape", [(48, 128), (128, 48)])
@pytest.mark.parametrize("frame_size", [(900, 500), (420, 900)])
def test_wide_and_tall_images_keep_their_aspect_ratio(qtbot, shape, frame_size):
    """The window shows the model's (square) input; a frame given a wide or a tall image
    (a model with a non-square input) lays it out the same way, in a wide or a tall frame."""
    h, w = shape
    frame = MapFrame()
    qtbot.addWidget(frame)
    frame.resize(*frame_size)
    frame.show()
    qtbot.waitExposed(frame)
    rgb = np.random.default_rng(0).integers(60, 255, (h, w, 3), dtype=np.uint8)
    frame.image_view.set_rgb(rgb)
    values = np.linspace(0.0, 2.5, h * w).reshape(h, w)
    frame.show_map(scale_of([values]), "viridis", "Attention rollout · target cat", [])
    QApplication.processEvents()
    _check_figure(frame, w / h)
    assert frame.color_bar.scale.hi == pytest.approx(2.5)


def test_training_leaves_the_image_what_it_can_fill(qtbot, window, files):
    _settle(qtbot, window, 1920, 1080)
    loaded(qtbot, window, files)
    training = window.extra_docks["training"]
    training.raise_()
    panel = window.panels["training"]
    qtbot.waitUntil(lambda: training.isVisible() and panel.width() > 0, timeout=5000)
    QApplication.processEvents()
    # The curves get room beside the form, and the image more than a third of the width
    # (a fixed 60% for the dock left it 360 px of 1920).
    assert panel.loss_plot.width() >= 380
    assert window.image_view.width() >= 0.3 * window.width()
    assert training.width() <= 0.6 * window.width() + 2
