"""Colour bar with real values, the caption, and the degenerate-map notice (issue 11), checked
against an independent recomputation with the core's functions."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from gui_helpers import CLASSES  # noqa: E402
from gui_helpers import loaded as _loaded

from inspector.core.colorscale import Scale, map_values, scale_of, to_unit  # noqa: E402
from inspector.core.explain import capture_image, load_image, open_model  # noqa: E402
from inspector.core.postprocess import COLORMAPS, upsample  # noqa: E402
from inspector.core.saliency import compute_map  # noqa: E402


def test_colour_bar_ends_are_the_maps_own_min_and_max_in_method_units(qtbot, window, files):
    _loaded(qtbot, window, files)
    s = window.current_settings()
    assert s.colormap == "viridis" and "jet" in COLORMAPS
    # Independent: own model and capture, the method's unscaled map, bilinear upsampling.
    lm = open_model(files["ckpt"])
    prepared = load_image(files["img0"], lm)
    raw = compute_map(capture_image(lm, prepared), settings=s.map, rescale=False)
    up = upsample(raw.astype(np.float64), prepared.display.shape[:2])
    bar = window.map_frame.color_bar
    assert bar.isVisible()
    assert bar.scale.lo == pytest.approx(up.min(), rel=1e-4, abs=1e-7)
    assert bar.scale.hi == pytest.approx(up.max(), rel=1e-4)
    assert bar.scale.hi > 0.0 and bar.scale.hi < 1.0  # rollout weights, not the colour index
    assert bar.labels()[2] == f"{bar.scale.hi:.3g}"
    # The colours on screen are exactly that range: min-max of the real values is the map drawn.
    np.testing.assert_allclose(to_unit(up, bar.scale), window.last_render.full, atol=2e-5)


def test_caption_names_method_and_only_the_settings_it_uses(qtbot, window, files):
    _loaded(qtbot, window, files)
    caption = window.map_frame.caption
    window.controls.set_method("rollout")
    assert window.wait_until_idle(20_000)
    text = caption.text()
    assert text.startswith("Attention rollout")
    assert "discard 0.90" in text or "discard" in text
    assert "fusion" in text and "layer 3" not in text
    target = CLASSES[window.capture.predicted_class]
    assert f"target {target} (predicted)" in text
    window.controls.set_layer_head(2, 1)  # raw attention of layer 2, head 1
    assert window.wait_until_idle(20_000)
    text = caption.text()
    assert "layer 2" in text and "head 1" in text and "discard" not in text
    # A target chosen in the predictions panel appears in the caption of a gradient method.
    window.controls.set_method("grad-rollout")
    other = window.capture.top_k(2)[1][0]
    window.predictions.classChosen.emit(other)
    assert window.wait_until_idle(30_000)
    assert f"target {CLASSES[other]}" in caption.text()
    assert "(predicted)" not in caption.text()


def test_scale_helpers_on_a_hand_built_case():
    s = scale_of([np.array([[1.0, 3.0]]), np.array([[np.nan, -1.0]])], "w")
    assert (s.lo, s.hi) == (-1.0, 3.0)
    np.testing.assert_allclose(to_unit(np.array([-1.0, 1.0, 3.0, 5.0]), s), [0, 0.5, 1, 1])
    assert to_unit(np.ones(3), Scale(2.0, 2.0)).tolist() == [0.0, 0.0, 0.0]
    v = map_values(np.array([[0.0, np.inf], [1.0, 2.0]]), 4, 2, "none")
    assert v.shape == (4, 4) and np.isfinite(v).all() and v.max() <= 2.0


def test_collapsed_model_shows_a_visible_notice_with_the_reason(qtbot, window, files, tmp_path):
    import torch

    from inspector.core.checkpoint import Checkpoint, save_checkpoint
    from inspector.core.config import Preprocess, preset
    from inspector.core.model import VisionTransformer

    # Zero query/key weights and biases: every attention row is uniform, so rollout is the
    # same for every patch - what a collapsed model (e.g. no residual connections) gives.
    torch.manual_seed(0)
    model = VisionTransformer(preset("baseline"))
    with torch.no_grad():
        for blk in model.blocks:
            d = blk.attn.qkv.weight.shape[1]
            blk.attn.qkv.weight[: 2 * d].zero_()
            if blk.attn.qkv.bias is not None:
                blk.attn.qkv.bias[: 2 * d].zero_()
    ckpt = Checkpoint.from_model(model, class_names=CLASSES, preprocess=Preprocess())
    path = save_checkpoint(tmp_path / "collapsed.pt", ckpt)
    _loaded(qtbot, window, files)
    notice = window.map_frame.notice
    assert not notice.isVisible()
    window.controls.set_method("rollout")
    with qtbot.waitSignal(window.captureReady, timeout=20_000):
        window.open_checkpoint(path)
    assert window.wait_until_idle(20_000)
    assert notice.isVisible()
    # Uniform rows: rollout is constant, and discarding 90% of equal entries leaves none.
    assert notice.text().startswith(("⚠ constant map", "⚠ all-zero map"))
    assert "collapsed attention" in notice.text()
    # Back to a healthy model: the notice goes away.
    with qtbot.waitSignal(window.captureReady, timeout=20_000):
        window.open_checkpoint(files["ckpt"])
    assert window.wait_until_idle(20_000)
    assert not notice.isVisible()
