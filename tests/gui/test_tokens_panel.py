"""The token panel beside the head/layer grid, used as a user would: registers' attention of a
DINOv2-with-registers model (timm weights, random) against the capture's own attention, and
the high-norm outlier list of a hand-built model with one planted outlier."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import Qt

pytest.importorskip("pytestqt")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from test_token_norm_method import PLANT, _image, _model  # noqa: E402

from inspector.core.checkpoint import Checkpoint, save_checkpoint  # noqa: E402
from inspector.core.config import Preprocess  # noqa: E402


def _show_tokens(qtbot, window):
    dock = window.extra_docks["tokens"]
    dock.show()
    dock.raise_()
    qtbot.waitUntil(dock.isVisible, timeout=5000)
    assert window.wait_until_idle(30_000)
    return window.panels["tokens"]


def _open(qtbot, window, ckpt: Path, image: Path) -> None:
    with qtbot.waitSignal(window.captureReady, timeout=60_000):
        window.open_checkpoint(ckpt)
        window.open_image(image)
    assert window.wait_until_idle(60_000)


def test_register_attention_shown_equals_the_capture(qtbot, window, files, tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("vit_small_patch14_reg4_dinov2", pretrained=False, depth=2,
                              num_classes=4)  # fmt: skip
    path = tmp_path / "dinov2_reg.pth"
    torch.save(model.state_dict(), path)
    _open(qtbot, window, path, files["img0"])
    panel = _show_tokens(qtbot, window)
    cap = window.capture
    for layer in (1, 0):  # the panel follows the layer control
        window.controls.layer.setValue(layer)
        assert window.wait_until_idle(30_000)
        shown = panel.registers
        assert shown is not None and shown.layer == layer
        assert shown.tokens == [1, 2, 3, 4]  # class, then 4 registers, then the grid
        a = cap.attentions[layer].double().mean(0).numpy()  # (T, T), heads averaged
        expected = a[1:5, 5:].reshape(4, 16, 16)  # each register's row over the patches only
        np.testing.assert_allclose(shown.maps, expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(shown.from_output, a[0, 1:5], rtol=1e-5)
        np.testing.assert_allclose(shown.to_patches, a[1:5, 5:].sum(-1), rtol=1e-5)
        assert len(panel.thumb_labels) == 4
        assert f"layer {layer}" in panel.register_title.text()
    # A model without registers says so.
    _open(qtbot, window, files["ckpt"], files["img0"])
    assert panel.registers is not None and panel.registers.tokens == []
    assert "none" in panel.register_title.text() and panel.thumb_labels == []


def test_outlier_list_names_the_planted_token_and_sets_the_query(qtbot, window, tmp_path):
    ckpt = Checkpoint.from_model(
        _model(), class_names=["a", "b", "c"],
        preprocess=Preprocess(image_size=32, mean=(0.0,) * 3, std=(1.0,) * 3),
    )  # fmt: skip
    path = save_checkpoint(tmp_path / "planted.pt", ckpt)
    img = tmp_path / "bright.png"
    Image.fromarray(_image()).save(img)
    _open(qtbot, window, path, img)
    window.controls.set_method("token-norm")
    panel = _show_tokens(qtbot, window)
    token = 1 + PLANT[0] * 4 + PLANT[1]
    assert [(o["row"], o["col"]) for o in panel.outliers] == [PLANT]
    assert panel.outlier_list.count() == 1
    assert f"token {token}" in panel.outlier_list.item(0).text()
    # The map shown is the layer's norms: brightest at the planted patch.
    grid = window.last_render.grid
    assert np.unravel_index(grid.argmax(), grid.shape) == PLANT
    # The panel's own norm map: the last block's patch-token norms as the capture recorded
    # them (the class token first, then 4 x 4 patches), the planted patch at the top of the
    # colour bar and boxed, the bar in the norms' own units.
    assert panel.norm_map.isVisible() and panel.norm_bar.isVisible()
    recorded = np.asarray(window.session.capture.extras["token_norms"])[-1, 1:].reshape(4, 4)
    np.testing.assert_allclose(panel.norm_values, recorded, rtol=1e-6)
    np.testing.assert_allclose(panel.norm_values / recorded.max(), grid, rtol=1e-5)
    pixels = panel.norm_map.pixels
    from inspector.core.postprocess import colorize

    top = colorize(np.ones((1, 1), np.float32), "viridis")[0, 0]
    np.testing.assert_array_equal(pixels[PLANT], top)
    assert panel.norm_bar.scale.hi == pytest.approx(float(recorded.max()), rel=1e-6)
    assert [(b.rect().y(), b.rect().x()) for b in panel._boxes] == [PLANT]
    # Every layer's norms below: the planted patch is red in each of the three layers, the
    # dots are the recorded norms (log10), the shown layer is marked.
    plot = panel.profile_plot
    assert plot.isVisible() and plot.outlier_count == 3
    all_norms = np.asarray(window.session.capture.extras["token_norms"])[:, 1:]  # (3, 16)
    _, ys = plot.dots.getData()
    np.testing.assert_allclose(np.sort(ys), np.sort(np.log10(all_norms).reshape(-1)), rtol=1e-5)
    assert plot.marker.value() == 2 and plot.marker.isVisible()
    # A user picks the outlier (Enter on the list): it becomes the query token.
    panel.outlier_list.setFocus()
    panel.outlier_list.setCurrentRow(0)
    qtbot.keyClick(panel.outlier_list, Qt.Key.Key_Return)
    assert window.wait_until_idle(30_000)
    assert window.current_settings().map.query == token
