"""Helpers shared by the GUI tests (not fixtures)."""

from __future__ import annotations

CLASSES = [f"shape{i}" for i in range(10)]


def loaded(qtbot, window, files, image: str = "img0"):
    """Open the tiny checkpoint and an image in ``window`` and wait until all is drawn."""
    with qtbot.waitSignal(window.captureReady, timeout=20_000):
        window.open_checkpoint(files["ckpt"])
        window.open_image(files[image])
    assert window.wait_until_idle(20_000)
    return window
