"""The Qt-free session model: events on assignment (what the window's views subscribe to), the
mask in its two geometries, and the display positions, against hand-built answers."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from inspector.core.capture import capture
from inspector.core.checkpoint import Checkpoint
from inspector.core.config import Preprocess, preset
from inspector.core.explain import LoadedModel, prepare
from inspector.core.metrics import smm
from inspector.core.model import VisionTransformer
from inspector.core.preprocess import align_mask, unalign_mask
from inspector.core.session import RenderResult, Session
from inspector.core.view_settings import ViewSettings


def _loaded(policy: str = "resize", size: int = 64) -> LoadedModel:
    torch.manual_seed(0)
    cfg = dataclasses.replace(preset("baseline"), image_size=size)
    model = VisionTransformer(cfg).eval()
    pre = Preprocess(
        image_size=size, policy=policy, resize_size=size + 16 if policy != "resize" else None
    )
    ckpt = Checkpoint.from_model(
        model, class_names=[f"c{i}" for i in range(cfg.num_classes)], preprocess=pre
    )
    return LoadedModel(ckpt, model, None, torch.device("cpu"))


def _captured(session: Session, loaded: LoadedModel, rgb: np.ndarray) -> None:
    prepared = prepare(rgb, loaded)
    session.set_model(loaded)
    session.set_captured(None, prepared, capture(loaded.model, prepared.tensor))


def _rgb(h: int, w: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_assigning_a_field_emits_its_event_once_and_only_on_change():
    s = Session()
    seen: list[tuple[str, object]] = []
    s.events.settings.connect(lambda v: seen.append(("settings", v)))
    s.events.mask.connect(lambda v: seen.append(("mask", v)))
    new = ViewSettings().replace(colormap="jet")
    s.settings = new
    s.settings = ViewSettings().replace(colormap="jet")  # equal value: no event
    m = np.zeros((4, 4), bool)
    s.mask = m
    s.mask = m.copy()  # equal array: no event
    s.mask = None
    assert [k for k, _ in seen] == ["settings", "mask", "mask"]
    assert seen[0][1] == new and seen[1][1] is m and seen[2][1] is None


def test_a_new_model_drops_the_capture_and_subscribers_see_it():
    s, loaded = Session(), _loaded()
    _captured(s, loaded, _rgb(64, 64))
    assert s.capture is not None and s.target == s.capture.predicted_class
    order: list[str] = []
    s.events.capture.connect(lambda v: order.append(f"capture {v}"))
    s.events.model.connect(lambda v: order.append("model"))
    s.set_model(_loaded())
    assert order == ["capture None", "model"]  # capture first: no view sees a stale pair


def test_a_mask_of_another_size_is_refused_with_the_sizes():
    s, loaded = Session(), _loaded()
    _captured(s, loaded, _rgb(96, 128))
    why = s.set_mask(np.ones((10, 12), bool))
    assert why == "The mask is 12×10 but the image is 128×96; mask not used"
    assert s.mask is None and s.mask_original is None
    assert Session().set_mask(np.ones((3, 3), bool)) == "Open an image before its mask"


def test_a_file_mask_is_aligned_like_the_preprocessing_and_realigned_for_another_model():
    s, loaded = Session(), _loaded("resize_crop")
    _captured(s, loaded, _rgb(96, 128))
    m = np.zeros((96, 128), bool)
    m[20:70, 30:100] = True
    assert s.set_mask(m) is None
    np.testing.assert_array_equal(s.mask, align_mask(m, (96, 128), loaded.checkpoint.preprocess))
    other = _loaded("resize", 32)
    s.set_model(other)
    s.set_captured(
        None,
        prepare(_rgb(96, 128), other),
        capture(other.model, prepare(_rgb(96, 128), other).tensor),
    )
    s.realign_mask()
    np.testing.assert_array_equal(s.mask, align_mask(m, (96, 128), other.checkpoint.preprocess))
    assert s.mask.shape == (32, 32)


def test_a_painted_mask_stays_exact_on_its_geometry_and_survives_a_model_change():
    s, loaded = Session(), _loaded("resize_crop")
    _captured(s, loaded, _rgb(96, 128))
    painted = np.zeros((64, 64), bool)
    painted[10:30, 5:50] = True
    s.set_display_mask(painted)
    assert s.mask is painted and s.mask_path is None
    np.testing.assert_array_equal(
        s.mask_original, unalign_mask(painted, (96, 128), loaded.checkpoint.preprocess)
    )
    s.realign_mask()  # same preprocessing: exactly as drawn, not a round trip through H x W
    np.testing.assert_array_equal(s.mask, painted)
    other = _loaded("resize", 64)
    s.set_model(other)
    s.set_captured(
        None,
        prepare(_rgb(96, 128), other),
        capture(other.model, prepare(_rgb(96, 128), other).tensor),
    )
    s.realign_mask()
    np.testing.assert_array_equal(
        s.mask, align_mask(s.mask_original, (96, 128), other.checkpoint.preprocess)
    )
    s.clear_mask()
    assert s.mask is None and s.mask_original is None and s.painted is None


def test_rescore_is_smm_of_the_map_on_screen_against_the_new_mask():
    s, loaded = Session(), _loaded()
    _captured(s, loaded, _rgb(64, 64))
    full = np.linspace(0, 1, 64 * 64).reshape(64, 64)
    s.result = RenderResult(ViewSettings(), None, full, np.zeros((64, 64, 3), np.uint8), None, 0.0)
    m = np.zeros((64, 64), bool)
    m[40:] = True
    s.set_mask(m)
    assert s.rescore() == smm(full, m, 0.3)
    s.clear_mask()
    assert s.rescore() is None


def test_display_positions_map_pixels_to_patches_and_back():
    s, loaded = Session(), _loaded()  # 64 px, patch 8: an 8x8 grid, one class token
    _captured(s, loaded, _rgb(64, 64))
    rows, cols = s.capture.grid_size
    assert (rows, cols) == (8, 8)
    assert s.patch_at(0, 0) == (0, 0, 1)
    assert s.patch_at(63, 63) == (7, 7, 1 + 63)
    assert s.patch_at(17, 9) == (1, 2, 1 + 1 * 8 + 2)  # x 17 -> column 2, y 9 -> row 1
    assert s.patch_box((1, 2)) == (16, 8, 8, 8)
    s.result = RenderResult(ViewSettings(), None, np.full((64, 64), 0.25), s.image.display, None, 0)
    text = s.readout(17, 9)
    r, g, b = (int(v) for v in s.image.display[9, 17])
    assert text == f"x 17, y 9 · RGB {r} {g} {b} · saliency 0.250 · patch (1, 2)"
    assert s.readout(64, 0) is None and s.readout(-1, 0) is None
