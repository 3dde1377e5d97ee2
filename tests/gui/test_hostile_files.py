"""Hostile files and mask drops in the main window (issue 13): a message, never an escaped
exception (``sys.excepthook`` is watched), and never a mask lost without a word."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("pytestqt")

from gui_helpers import loaded as _loaded  # noqa: E402

from inspector.core.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from inspector.core.imageio import read_mask  # noqa: E402
from inspector.core.preprocess import align_mask  # noqa: E402


@pytest.fixture
def escaped(monkeypatch):
    """Exceptions that reach the event loop's top (what the user would see as a crash)."""
    seen: list[BaseException] = []
    monkeypatch.setattr(sys, "excepthook", lambda t, v, tb: seen.append(v))
    return seen


def test_float64_checkpoint_predicts_like_its_float32_original(
    qtbot, window, files, tmp_path, escaped
):
    ckpt = load_checkpoint(files["ckpt"])
    ckpt.state_dict = {k: v.double() for k, v in ckpt.state_dict.items()}
    path = save_checkpoint(tmp_path / "double.pt", ckpt)
    with qtbot.waitSignal(window.captureReady, timeout=20_000):
        window.open_checkpoint(path)
        window.open_image(files["img0"])
    assert window.wait_until_idle(20_000)
    probs = window.capture.probabilities
    with qtbot.waitSignal(window.captureReady, timeout=20_000):
        window.open_checkpoint(files["ckpt"])
    assert window.wait_until_idle(20_000)
    np.testing.assert_array_equal(np.asarray(probs), np.asarray(window.capture.probabilities))
    assert escaped == []


def test_nan_weights_are_a_message(qtbot, window, files, tmp_path, escaped):
    ckpt = load_checkpoint(files["ckpt"])
    ckpt.state_dict["head.weight"] = torch.full_like(ckpt.state_dict["head.weight"], np.nan)
    path = save_checkpoint(tmp_path / "nan.pt", ckpt)
    with qtbot.waitSignal(window.errorShown, timeout=20_000) as sig:
        window.open_checkpoint(path)
        window.open_image(files["img0"])
    assert "NaN" in sig.args[0]
    assert window.wait_until_idle(20_000)
    assert window.loaded is None and escaped == []


def test_decompression_bomb_is_a_message(qtbot, window, files, tmp_path, escaped):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (15000, 15000)).save(bomb)
    _loaded(qtbot, window, files)
    with qtbot.waitSignal(window.errorShown, timeout=20_000) as sig:
        window.open_image(bomb)
    assert "decompression bomb" in sig.args[0]
    assert window.wait_until_idle(20_000) and escaped == []


def _small_mask(tmp_path):
    path = tmp_path / "small_mask.png"
    Image.fromarray(np.full((10, 12), 255, np.uint8)).save(path)
    return path


def test_new_image_dropped_with_a_mask_of_another_size_says_so(
    qtbot, window, files, tmp_path, escaped
):
    _loaded(qtbot, window, files)
    with qtbot.waitSignal(window.errorShown, timeout=20_000) as sig:
        window.open_paths([files["img1"], _small_mask(tmp_path)])
    assert "12×10" in sig.args[0] and "mask not used" in sig.args[0]
    assert window.wait_until_idle(20_000) and escaped == []


def test_folder_with_a_wrong_size_stem_mask_says_so(qtbot, window, files, tmp_path, escaped):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.open(files["img0"]).save(folder / "a.png")
    Image.fromarray(np.full((10, 12), 255, np.uint8)).save(folder / "a_mask.png")
    with qtbot.waitSignal(window.modelLoaded, timeout=20_000):
        window.open_checkpoint(files["ckpt"])
    with qtbot.waitSignal(window.errorShown, timeout=20_000) as sig:
        window.open_paths([folder])
    assert "mask not used" in sig.args[0]
    assert window.wait_until_idle(20_000)
    assert window.mask is None and escaped == []


def test_redropping_the_open_image_with_a_mask_uses_that_mask(qtbot, window, files, escaped):
    _loaded(qtbot, window, files, "img0")  # img0_mask.png beside it is in use
    own = window.mask.copy()
    window.open_paths([files["img0"], files["mask1"]])
    qtbot.waitUntil(lambda: window.mask_path == files["mask1"], timeout=20_000)
    assert window.wait_until_idle(20_000)
    m1 = read_mask(files["mask1"])
    expected = align_mask(m1, m1.shape, window.loaded.checkpoint.preprocess)
    np.testing.assert_array_equal(window.mask, expected)
    assert not np.array_equal(window.mask, own)
    assert escaped == []
