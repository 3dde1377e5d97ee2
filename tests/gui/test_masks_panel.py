"""Masks panel: brush, box, files, dataset mask, Mask R-CNN on a worker, and the metrics view."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("pytestqt")

from inspector.core import metrics  # noqa: E402
from inspector.core.masks import MaskRCNNSegmenter  # noqa: E402
from inspector.gui.masks_panel import MasksPanel  # noqa: E402

S = 32


def _disk(size: int, x: int, y: int, r: int) -> np.ndarray:
    """Independent reference: pixels (row i, col j) with (j-x)^2 + (i-y)^2 <= r^2."""
    out = np.zeros((size, size), bool)
    for i in range(size):
        for j in range(size):
            out[i, j] = (j - x) ** 2 + (i - y) ** 2 <= r * r
    return out


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (S, S, 3), dtype=np.uint8)


@pytest.fixture
def panel(qtbot, image):
    w = MasksPanel()
    qtbot.addWidget(w)
    w.set_image(image)
    yield w
    w.wait_idle()


def test_paint_strokes_make_disks(panel, qtbot):
    assert panel.mask() is None
    with qtbot.waitSignal(panel.mask_changed) as sig:
        panel.paint(10, 12, 3)
    np.testing.assert_array_equal(sig.args[0], _disk(S, 10, 12, 3))
    # A second stamp adds; one at the border is clipped; floats pick the pixel under them.
    panel.paint(1.7, 30.2, 4)
    expected = _disk(S, 10, 12, 3) | _disk(S, 1, 30, 4)
    np.testing.assert_array_equal(panel.mask(), expected)
    # Erasing removes exactly a disk.
    panel.paint(10, 12, 1, erase=True)
    expected &= ~_disk(S, 10, 12, 1)
    np.testing.assert_array_equal(panel.mask(), expected)
    # The panel's own brush settings are used when the view passes no radius.
    panel.radius_spin.setValue(2)
    panel.erase_button.setChecked(True)
    panel.paint(2, 29)
    expected &= ~_disk(S, 2, 29, 2)
    np.testing.assert_array_equal(panel.mask(), expected)
    assert panel.source() == "brush"


def test_box_makes_rectangle(panel):
    assert panel.set_box(3, 4, 10, 20)
    expected = np.zeros((S, S), bool)
    expected[4:21, 3:11] = True  # rows y0..y1, columns x0..x1, inclusive
    np.testing.assert_array_equal(panel.mask(), expected)
    # Corners dragged the other way round give the same box.
    assert panel.set_box(10, 20, 3, 4)
    np.testing.assert_array_equal(panel.mask(), expected)
    assert [s.value() for s in panel.box_spins] == [3, 4, 10, 20]


def test_mask_file_round_trip_and_bad_file(panel, tmp_path):
    truth = np.random.default_rng(1).random((S, S)) > 0.6
    path = tmp_path / "mask.png"
    Image.fromarray(truth.astype(np.uint8) * 255).save(path)
    assert panel.load_mask_file(path)
    np.testing.assert_array_equal(panel.mask(), truth)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    assert not panel.load_mask_file(bad)
    assert panel.error_label.text() and "Traceback" not in panel.error_label.text()
    np.testing.assert_array_equal(panel.mask(), truth)  # unchanged


def test_dataset_mask_and_clear(qtbot, image):
    w = MasksPanel()
    qtbot.addWidget(w)
    dm = np.zeros((S, S), bool)
    dm[5:9, 7:15] = True
    w.set_image(image, dataset_mask=dm)
    np.testing.assert_array_equal(w.mask(), dm)
    assert w.dataset_button.isEnabled()
    with qtbot.waitSignal(w.mask_changed) as sig:
        w.clear()
    assert sig.args[0] is None and w.mask() is None
    w.use_dataset_mask()
    np.testing.assert_array_equal(w.mask(), dm)
    w.set_image(image)  # a new image without a dataset mask
    assert w.mask() is None and not w.dataset_button.isEnabled()


def test_displayed_smm_equals_core(panel, qtbot):
    saliency = np.random.default_rng(2).random((4, 4)).astype(np.float32)
    view = panel.metrics_view
    with qtbot.waitSignal(view.updated) as sig:
        panel.set_box(2, 2, 17, 13)
        panel.set_saliency(saliency)
        panel.set_threshold(0.45)
    expected = metrics.smm(saliency, panel.mask(), 0.45)
    assert expected is not None
    assert sig.args[0]["smm"] == expected
    assert view.smm_text() == f"SMM@0.45: {expected:.4f}"
    loc = metrics.localisation_metrics(saliency, panel.mask(), 0.45)
    assert view.metrics()["relevance_mass"] == loc["relevance_mass"]
    assert view._value_labels["relevance_mass"].text() == f"{loc['relevance_mass']:.4f}"

    # Painting changes the mask and the SMM follows live.
    with qtbot.waitSignal(view.updated):
        panel.paint(25, 25, 5)
    assert view.metrics()["smm"] == metrics.smm(saliency, panel.mask(), 0.45)

    # Undefined: an empty mask and a constant map (empty union).
    with qtbot.waitSignal(view.updated):
        panel.set_mask(np.zeros((S, S), bool))
        panel.set_saliency(np.full((4, 4), 0.5, np.float32))
    assert metrics.smm(np.full((4, 4), 0.5), np.zeros((S, S), bool), 0.45) is None
    assert view.smm_text() == "SMM@0.45: undefined"
    assert view._value_labels["pointing_game"].text() == "undefined"


def test_wrong_size_mask_is_refused(panel):
    assert not panel.set_mask(np.ones((S + 1, S), bool))
    assert "image" in panel.error_label.text()
    assert panel.mask() is None


@pytest.fixture(scope="module")
def maskrcnn_weights(tmp_path_factory) -> str:
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=3)
    path = tmp_path_factory.mktemp("maskrcnn") / "random_maskrcnn.pth"
    torch.save(model.state_dict(), path)
    return str(path)


@pytest.mark.slow
def test_maskrcnn_runs_in_worker(qtbot, image, maskrcnn_weights):
    w = MasksPanel()
    qtbot.addWidget(w)
    assert not w.run_maskrcnn()  # no image yet
    w.set_image(image)
    w.set_maskrcnn_weights(maskrcnn_weights)
    w.maskrcnn_min_size = w.maskrcnn_max_size = 64
    w.score_spin.setValue(0.0)  # a random model's scores are low: keep every detection
    with qtbot.waitSignal(w.busy_changed) as busy:
        assert w.run_maskrcnn()
    assert busy.args == [True] and w.busy_bar.isVisibleTo(w)
    assert not w.run_button.isEnabled()
    with qtbot.waitSignal(w.mask_changed, timeout=60_000) as sig:
        pass
    got = sig.args[0]
    assert got.shape == (S, S) and got.dtype == bool
    assert not w.busy_bar.isVisibleTo(w) and w.run_button.isEnabled()
    # The panel built the core segmenter with the user's settings ...
    seg = w._segmenter
    assert isinstance(seg, MaskRCNNSegmenter)
    assert (seg.score_threshold, seg.mask_threshold) == (0.0, 0.5)
    assert tuple(seg.model.transform.min_size) == (64,) and seg.model.transform.max_size == 64
    # ... and shows exactly what the core returns for this image (re-run here, same weights).
    np.testing.assert_array_equal(got, seg.segment(image).mask)
    assert w.source().startswith("mask r-cnn")
    # The weights path is remembered for the next session.
    assert MasksPanel().maskrcnn_weights() == maskrcnn_weights


def test_maskrcnn_bad_weights_is_a_message(qtbot, image, tmp_path):
    w = MasksPanel()
    qtbot.addWidget(w)
    w.set_image(image)
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"garbage")
    w.set_maskrcnn_weights(bad)
    with qtbot.waitSignal(w.busy_changed, timeout=30_000, check_params_cb=lambda b: not b):
        w.run_maskrcnn()
    assert "Mask R-CNN" in w.error_label.text() and w.mask() is None
