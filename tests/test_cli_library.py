"""explain on library models: maps for a SigLIP (attention-pool output row), one-line refusals
for Swin rollout and for class-token attention on a model without a class token."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

timm = pytest.importorskip("timm")

from inspector.cli import main  # noqa: E402


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 110, 3), np.uint8)).save(path)
    return path


def _save(tmp_path, name, **kw):
    torch.manual_seed(0)
    m = timm.create_model(name, pretrained=False, num_classes=5, **kw)
    path = tmp_path / f"{name}.pth"
    torch.save(m.state_dict(), path)
    return path


def test_siglip_relevance_and_refusals(tmp_path, image, capsys):
    ckpt = _save(tmp_path, "vit_base_patch16_siglip_224", depth=1, embed_dim=192, num_heads=3)
    out = tmp_path / "out"
    argv = ["explain", "--checkpoint", str(ckpt), "--image", str(image), "--out", str(out)]
    assert main([*argv, "--method", "relevance"]) == 0
    record = json.loads((out / "img.json").read_text())
    assert len(record["predictions"]) == 5
    assert np.load(out / "img_relevance.npy").shape == (14, 14)
    assert main([*argv, "--method", "cls-attention", "--overwrite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not classify from" in err[0]


def test_swin_rollout_refuses_with_the_reason(tmp_path, image, capsys):
    ckpt = _save(
        tmp_path,
        "swin_tiny_patch4_window7_224",
        depths=(2, 2, 2, 2),
        embed_dim=24,
        num_heads=(3, 3, 3, 3),
    )
    argv = ["explain", "--checkpoint", str(ckpt), "--image", str(image), "--out"]
    assert main([*argv, str(tmp_path / "a"), "--method", "rollout"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rollout is not defined for Swin" in err[0]
    assert main([*argv, str(tmp_path / "b"), "--method", "relevance"]) == 0
    assert np.load(tmp_path / "b" / "img_relevance.npy").shape == (7, 7)
