"""``python main.py [IMAGE ...] [--checkpoint C] --screenshot PATH``: renders and exits 0."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("pytestqt")

from inspector.core.checkpoint import Checkpoint, save_checkpoint  # noqa: E402
from inspector.core.config import Preprocess, preset  # noqa: E402
from inspector.core.model import VisionTransformer  # noqa: E402
from inspector.gui import app, gc_guard  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def inputs(tmp_path) -> tuple[Path, Path]:
    torch.manual_seed(0)
    ckpt = Checkpoint.from_model(
        VisionTransformer(preset("baseline")),
        class_names=[f"c{i}" for i in range(10)],
        preprocess=Preprocess(),
    )
    ck = save_checkpoint(tmp_path / "m.pt", ckpt)
    img = np.zeros((64, 64, 3), np.uint8)
    img[16:48, 20:44] = (250, 40, 40)  # a red block on black
    Image.fromarray(img).save(tmp_path / "red.png")
    return ck, tmp_path / "red.png"


def test_parse_args_keeps_the_cli():
    ns = app.parse_args(["a.png", "b.png", "--checkpoint", "c.pt", "--screenshot", "s.png"])
    assert ns.images == [Path("a.png"), Path("b.png")]
    assert ns.checkpoint == Path("c.pt") and ns.screenshot == Path("s.png")


def test_screenshot_in_process_shows_the_overlay(qtbot, inputs, tmp_path):
    ck, img = inputs
    out = tmp_path / "shot.png"
    assert app.main([str(img), "--checkpoint", str(ck), "--screenshot", str(out)]) == 0
    shot = np.asarray(Image.open(out).convert("RGB"))
    assert shot.shape[0] >= 600 and shot.shape[1] >= 1000
    # The overlay is drawn: jet colours (saturated blue/cyan/red) appear on screen, which a
    # red block on black without overlay could not produce.
    blueish = (shot[..., 2] > 150) & (shot[..., 0] < 100)
    assert blueish.sum() > 500


def test_main_py_screenshot_subprocess_exits_0(inputs, tmp_path):
    ck, img = inputs
    out = tmp_path / "cli.png"
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / ".config"),
    }
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "main.py"),
            str(img),
            "--checkpoint",
            str(ck),
            "--screenshot",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert out.exists() and Image.open(out).size[0] >= 1000


def test_missing_checkpoint_still_renders_with_a_message(qtbot, tmp_path):
    out = tmp_path / "empty.png"
    assert app.main(["--checkpoint", str(tmp_path / "nope.pt"), "--screenshot", str(out)]) == 0
    assert out.exists()


def test_the_collector_returns_frozen_once_the_first_map_is_painted(qtbot, window, inputs):
    """main.py starts with the cyclic GC off; the first painted map turns collection back on
    (the GUI thread's timer, gc_guard), with start-up's objects frozen, so later full
    collections no longer walk torch's modules."""
    ck, img = inputs
    gc_guard.set_wanted(False)  # as app.main does when main.py turned the collector off
    try:
        app.settle_garbage_collector(window, fallback_ms=60_000)
        with qtbot.waitSignal(window.overlayUpdated, timeout=30_000):
            window.open_checkpoint(ck)
            window.open_image(img)
        assert not gc_guard.wanted()  # not before the paint that follows the overlay
        qtbot.waitUntil(gc_guard.wanted, timeout=5_000)
        assert gc.get_freeze_count() > 100_000  # torch alone leaves ~300k tracked objects
        assert len(gc.get_objects()) < gc.get_freeze_count() / 10
    finally:
        gc.unfreeze()
        gc_guard.set_wanted(True)


def test_the_collector_returns_without_a_map_after_the_fallback(qtbot, window):
    gc_guard.set_wanted(False)
    try:
        app.settle_garbage_collector(window, fallback_ms=50)  # no checkpoint: no map comes
        qtbot.waitUntil(gc_guard.wanted, timeout=5_000)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc_guard.set_wanted(True)
