"""One pipeline, one mask alignment: `explain --mask`, `evaluate` and the in-process pipeline
(the GUI's render path) give the same SMM for the same image and mask, exactly.

Two models: our own format (resize to the input) and a random timm ViT, whose imported
preprocessing resizes the short side and centre-crops (the geometry where a stretched mask and
a cropped mask disagree). Images and masks are the synthetic test split, written as PNG files.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inspector.cli import main
from inspector.core.data import load_dataset
from inspector.core.explain import load_image, open_model
from inspector.core.imageio import read_mask
from inspector.core.pipeline import ExplainSettings, explain_one
from inspector.core.saliency import MapSettings
from inspector.paths import DEFAULT_CHECKPOINT

N = 4


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> tuple[Path, list[tuple[Path, Path]]]:
    root = tmp_path_factory.mktemp("samples")
    test = load_dataset("synthetic", classes=10, seed=0).split("test")
    pairs = []
    for i in range(N):
        img = root / f"img{i}.png"
        msk = root / f"img{i}_mask.png"
        Image.fromarray(test.images[i].permute(1, 2, 0).numpy()).save(img)
        Image.fromarray(test.masks[i].numpy().astype(np.uint8) * 255).save(msk)
        pairs.append((img, msk))
    return root, pairs


@pytest.fixture(scope="module")
def timm_checkpoint(tmp_path_factory) -> Path:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=10
    )
    path = tmp_path_factory.mktemp("timm") / "vit.pth"
    torch.save(model.state_dict(), path)
    return path


def _models(timm_checkpoint: Path) -> list[tuple[Path, list[str]]]:
    return [(DEFAULT_CHECKPOINT, []), (timm_checkpoint, ["--heads", "2"])]


@pytest.mark.parametrize("which", ["ours", "timm"])
def test_explain_evaluate_and_the_pipeline_agree_exactly(which, samples, timm_checkpoint, tmp_path):
    ckpt, flags = _models(timm_checkpoint)[0 if which == "ours" else 1]
    _, pairs = samples
    common = ["--fusion", "max", "--discard", "0.5"]
    # evaluate: the synthetic test split, scored by the core's dataset loop
    ev = tmp_path / "eval"
    rc = main(
        ["evaluate", "--checkpoint", str(ckpt), "--data", "synthetic", "--split", "test"]
        + ["--limit", str(N), "--methods", "rollout", "--out", str(ev), *common, *flags]
    )
    assert rc == 0
    with open(ev / "per_image.csv") as fh:
        evaluated = [float(r["rollout/smm"]) for r in csv.DictReader(fh)]
    # explain --mask: the same images and masks as files
    ex = tmp_path / "explain"
    rc = main(
        ["explain", "--checkpoint", str(ckpt), "--method", "rollout", "--out", str(ex)]
        + ["--image", *[str(i) for i, _ in pairs], "--mask", *[str(m) for _, m in pairs]]
        + [*common, *flags]
    )
    assert rc == 0
    explained = [
        json.loads((ex / f"{i.stem}.json").read_text())["metrics"]["smm"] for i, _ in pairs
    ]
    # the pipeline in process, as the GUI calls it
    loaded = open_model(ckpt, heads=2 if flags else None)
    if which == "timm":
        assert loaded.checkpoint.preprocess.policy == "resize_crop"
    settings = ExplainSettings(map=MapSettings(method="rollout", fusion="max", discard_ratio=0.5))
    direct = [
        explain_one(loaded, load_image(i, loaded), settings, mask=read_mask(m)).smm
        for i, m in pairs
    ]
    assert evaluated == explained == direct
    assert all(v is not None for v in direct)


def test_a_stretched_mask_would_disagree_for_a_cropping_model(samples, timm_checkpoint):
    """Guard that the agreement above is not vacuous: under resize + crop, stretching the
    mask to the input (the old CLI path) moves it off the object."""
    from inspector.core.postprocess import upsample

    loaded = open_model(timm_checkpoint, heads=2)
    _, pairs = samples
    img, msk = pairs[0]
    result = explain_one(loaded, load_image(img, loaded), ExplainSettings(), mask=read_mask(msk))
    stretched = upsample(read_mask(msk).astype(np.float32), result.display.shape[:2]) >= 0.5
    inter = np.logical_and(stretched, result.mask).sum()
    union = np.logical_or(stretched, result.mask).sum()
    assert inter / union < 0.95


def test_a_mask_of_another_size_is_refused_the_same_way_everywhere(samples, tmp_path, capsys):
    _, pairs = samples
    img, _ = pairs[0]
    bad = tmp_path / "bad_mask.png"
    Image.fromarray(np.full((50, 100), 255, np.uint8)).save(bad)  # 100 wide, 50 high
    rc = main(
        ["explain", "--checkpoint", str(DEFAULT_CHECKPOINT), "--image", str(img)]
        + ["--mask", str(bad), "--out", str(tmp_path / "out")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("vit-inspector: error:")
    assert "100x50" in err[0] and "64x64" in err[0]
    assert not (tmp_path / "out" / f"{img.stem}.json").exists()  # nothing half-written
    loaded = open_model(DEFAULT_CHECKPOINT)
    with pytest.raises(ValueError, match="100x50 but the image is 64x64"):
        explain_one(loaded, load_image(img, loaded), mask=read_mask(bad))
