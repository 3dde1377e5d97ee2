"""The window's SMM equals `vit-inspector explain --mask` on the same image and mask, for our
format (resize) and a random timm ViT (resize + centre crop); the gradient-target control reaches
the maps; a degenerate map is noticed on screen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("pytestqt")

from inspector.cli import main  # noqa: E402
from inspector.core.data import load_dataset  # noqa: E402
from inspector.paths import DEFAULT_CHECKPOINT  # noqa: E402


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pair")
    test = load_dataset("synthetic", classes=10, seed=0).split("test")
    img, msk = root / "sample.png", root / "sample_mask.png"
    Image.fromarray(test.images[1].permute(1, 2, 0).numpy()).save(img)
    Image.fromarray(test.masks[1].numpy().astype(np.uint8) * 255).save(msk)
    return img, msk


@pytest.fixture(scope="module")
def timm_ckpt(tmp_path_factory) -> Path:
    timm = pytest.importorskip("timm")
    torch.manual_seed(1)
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=10
    )
    path = tmp_path_factory.mktemp("timm") / "vit_tiny_random.pth"
    torch.save(model.state_dict(), path)
    return path


def _open(qtbot, window, ckpt: Path, img: Path, msk: Path, heads: int | None) -> None:
    from inspector.core.load_options import LoadOptions

    with qtbot.waitSignal(window.captureReady, timeout=30_000):
        window.open_checkpoint(ckpt, options=LoadOptions(heads=heads) if heads else None)
        window.open_paths([img, msk])  # as a drop of the image with its mask
    assert window.wait_until_idle(30_000)


@pytest.mark.parametrize("which", ["ours", "timm"])
def test_window_smm_equals_explain_mask(qtbot, window, pair, timm_ckpt, tmp_path, which):
    img, msk = pair
    ckpt, heads = (DEFAULT_CHECKPOINT, None) if which == "ours" else (timm_ckpt, 2)
    _open(qtbot, window, ckpt, img, msk, heads)
    assert window.mask is not None
    window.controls.set_method("rollout")
    window.controls.fusion.setCurrentText("max")
    window.controls.discard.setValue(50)  # the slider a user drags
    assert window.wait_until_idle(10_000)
    gui_smm = window.last_render.smm
    out = tmp_path / "cli"
    args = ["explain", "--checkpoint", str(ckpt), "--image", str(img), "--mask", str(msk)]
    args += ["--method", "rollout", "--fusion", "max", "--discard", "0.5", "--out", str(out)]
    args += ["--heads", str(heads)] if heads else []
    assert main(args) == 0
    cli_smm = json.loads((out / "sample.json").read_text())["metrics"]["smm"]
    assert gui_smm is not None and gui_smm == cli_smm


def test_gradient_target_control_changes_the_gradient_used(qtbot, window, pair):
    img, msk = pair
    _open(qtbot, window, DEFAULT_CHECKPOINT, img, msk, None)
    window.controls.set_method("relevance")
    assert window.wait_until_idle(20_000)
    logit_map = window.last_render.grid.copy()
    assert window.last_render.settings.map.target == "logit"
    window.controls.target.setCurrentIndex(window.controls.target.findData("probability"))
    assert window.wait_until_idle(20_000)
    assert window.last_render.settings.map.target == "probability"
    cap = window.capture
    c = cap.predicted_class
    assert cap.has_gradients(c, "probability") and cap.has_gradients(c, "logit")
    assert not np.allclose(window.last_render.grid, logit_map)
    meta = window.export_metadata()
    assert meta["settings"]["target"] == "probability"
    assert "fusion" not in meta["settings"]  # relevance does not read it
    assert meta["mask"]["source"] == "file" and meta["mask"]["path"] == str(msk)
    assert meta["mask"]["pixels"] == int(window.mask.sum())


def test_a_constant_map_is_noticed(qtbot, window, pair, tmp_path):
    """A model whose attention is uniform (all logits of q k^T equal) gives a constant map."""
    from inspector.core.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(DEFAULT_CHECKPOINT)
    for name, value in ckpt.state_dict.items():
        if ".attn.qkv." in name:
            value.zero_()  # q = k = v = 0: every attention row is uniform
    flat = tmp_path / "uniform.pt"
    save_checkpoint(flat, ckpt)
    img, msk = pair
    _open(qtbot, window, flat, img, msk, None)
    window.controls.set_method("attention")
    assert window.wait_until_idle(10_000)
    assert window.map_flags and window.map_flags[0].startswith("constant map")
    assert "constant map" in window.statusBar().currentMessage()
