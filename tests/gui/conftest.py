"""Shared GUI fixtures: a tiny checkpoint with synthetic images and masks, and a main window
with its own throw-away settings file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gui_helpers import CLASSES
from PIL import Image


@pytest.fixture(scope="session")
def files(tmp_path_factory) -> dict[str, Path]:
    """A tiny model (random weights, seeded) and three synthetic images + masks."""
    from inspector.core.checkpoint import Checkpoint, save_checkpoint
    from inspector.core.config import Preprocess, preset
    from inspector.core.data.synthetic import render_sample
    from inspector.core.model import VisionTransformer

    root = tmp_path_factory.mktemp("gui")
    torch.manual_seed(0)
    model = VisionTransformer(preset("baseline"))
    # Random init gives almost uniform attention; sharpen it so maps differ between settings.
    with torch.no_grad():
        for blk in model.blocks:
            blk.attn.qkv.weight.mul_(8.0)
    ckpt = Checkpoint.from_model(model, class_names=CLASSES, preprocess=Preprocess())
    out = {"ckpt": save_checkpoint(root / "tiny.pt", ckpt)}
    rng = np.random.default_rng(1)
    for i in range(3):
        s = render_sample(rng, i)
        Image.fromarray(s.image).save(root / f"img{i}.png")
        Image.fromarray((s.mask * 255).astype(np.uint8)).save(root / f"img{i}_mask.png")
        out[f"img{i}"] = root / f"img{i}.png"
        out[f"mask{i}"] = root / f"img{i}_mask.png"
    (root / "notes.txt").write_text("hello")  # a folder drop skips it
    bad = root.parent / f"{root.name}-bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"this is not a png")
    out["broken"] = bad / "broken.png"
    (bad / "notes.txt").write_text("hello")
    out["txt"] = bad / "notes.txt"
    return out


@pytest.fixture
def window(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from inspector.gui.main_window import MainWindow

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.resize(1100, 700)
    w.show()
    yield w
    w.close()
