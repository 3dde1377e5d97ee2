"""The vit-inspector command line, end to end, as a script or a cluster job would use it."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from inspector.cli import main
from inspector.core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from inspector.core.config import Preprocess, preset
from inspector.core.data import make_synthetic
from inspector.core.export import read_png_metadata
from inspector.core.model import VisionTransformer


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = VisionTransformer(preset("baseline")).eval()
    ckpt = Checkpoint.from_model(
        model, class_names=[f"class {i}" for i in range(10)], preprocess=Preprocess()
    )
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, ckpt)
    return path


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory):
    data = make_synthetic(seed=5, train_per_class=1, val_per_class=1, test_per_class=1)
    folder = tmp_path_factory.mktemp("images")
    image = data.test.images[0].permute(1, 2, 0).numpy()
    mask = data.test.masks[0].numpy()
    Image.fromarray(image).save(folder / "shape.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(folder / "shape_mask.png")
    return folder / "shape.png", folder / "shape_mask.png", image, mask


def test_train_writes_checkpoints_and_prints_a_table(tmp_path, capsys):
    code = main(
        [
            "train",
            "--preset",
            "baseline",
            "--data",
            "synthetic",
            "--epochs",
            "1",
            "--train-per-class",
            "6",
            "--batch-size",
            "32",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "val accuracy" in out and "trained 1 epochs" in out
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ckpt.config == preset("baseline")
    assert ckpt.provenance["preset"] == "baseline"


def test_train_without_clipping_and_with_coupled_adam(tmp_path, capsys):
    """The switches for reproducing older code: no gradient clipping, Adam's L2 decay."""
    code = main(
        [
            "train",
            "--preset",
            "baseline",
            "--data",
            "synthetic",
            "--epochs",
            "1",
            "--train-per-class",
            "4",
            "--batch-size",
            "32",
            "--device",
            "cpu",
            "--grad-clip",
            "0",
            "--optimizer",
            "adam",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert code == 0
    cfg = load_checkpoint(tmp_path / "run" / "last.pt").train_config
    assert cfg["grad_clip"] is None and cfg["optimizer"] == "adam"
    code = main(
        [
            "train",
            "--data",
            "synthetic",
            "--epochs",
            "1",
            "--grad-clip",
            "-1",
            "--out",
            str(tmp_path / "bad"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "grad_clip must be positive" in err[-1]


def test_bad_input_is_one_line_and_non_zero(tmp_path, capsys):
    code = main(
        [
            "train",
            "--data",
            str(tmp_path / "missing"),
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("vit-inspector: error:")
    assert "Traceback" not in err[0]

    code = main(
        [
            "explain",
            "--checkpoint",
            str(tmp_path / "nope.pt"),
            "--image",
            str(tmp_path / "x.png"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("vit-inspector: error:")


def test_explain_writes_overlay_map_json_and_attention(random_checkpoint, sample_files, tmp_path):
    image_path, mask_path, image, mask = sample_files
    out = tmp_path / "out"
    code = main(
        [
            "explain",
            "--checkpoint",
            str(random_checkpoint),
            "--image",
            str(image_path),
            "--method",
            "rollout",
            "--fusion",
            "min",
            "--discard",
            "0.5",
            "--mask",
            str(mask_path),
            "--save-attention",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    record = json.loads((out / "shape.json").read_text())
    grid = np.load(out / "shape_rollout.npy")
    attention = np.load(out / "shape_attention.npy")
    assert grid.dtype == np.float32 and grid.shape == (8, 8)
    assert attention.shape == (4, 4, 65, 65) and attention.dtype == np.float32

    # Predictions against an independent forward pass of the same weights.
    model = load_checkpoint(random_checkpoint).build_model()
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        probs = model((x - 0.5) / 0.5).softmax(-1)[0]
        out_attn = model.forward_with_attention((x - 0.5) / 0.5).attentions
    top = record["predictions"][0]
    assert top["class"] == int(probs.argmax())
    assert top["probability"] == pytest.approx(float(probs.max()), abs=1e-6)
    assert len(record["predictions"]) == 5
    np.testing.assert_allclose(attention[0], out_attn[0][0].numpy(), atol=1e-6)

    # Settings and metrics recorded in the JSON and in the PNG's text metadata.
    assert record["settings"]["fusion"] == "min" and record["settings"]["discard_ratio"] == 0.5
    assert 0.0 <= record["metrics"]["smm"] <= 1.0
    meta = read_png_metadata(out / "shape_rollout.png")
    assert meta["settings"] == record["settings"]
    # The overlay enlarged to 512 px (the default --size), a colour bar beside it.
    assert meta["figure"]["size"] == [512, 512]
    width, height = Image.open(out / "shape_rollout.png").size
    assert width > 512 and height >= 512
    assert meta["figure"]["colorbar"]["hi"] >= meta["figure"]["colorbar"]["lo"]


def test_explain_never_overwrites_silently(random_checkpoint, sample_files, tmp_path, capsys):
    image_path = sample_files[0]
    args = [
        "explain",
        "--checkpoint",
        str(random_checkpoint),
        "--image",
        str(image_path),
        "--device",
        "cpu",
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 0
    before = (tmp_path / "shape_rollout.npy").read_bytes()
    capsys.readouterr()
    assert main(args + ["--method", "rollout", "--fusion", "mean"]) == 2
    assert "exist" in capsys.readouterr().err
    assert (tmp_path / "shape_rollout.npy").read_bytes() == before
    assert main(args + ["--fusion", "mean", "--overwrite"]) == 0
    assert (tmp_path / "shape_rollout.npy").read_bytes() != before


def test_evaluate_summary_matches_a_direct_evaluation(random_checkpoint, tmp_path):
    out = tmp_path / "eval"
    code = main(
        [
            "evaluate",
            "--checkpoint",
            str(random_checkpoint),
            "--data",
            "synthetic",
            "--seed",
            "2",
            "--split",
            "val",
            "--limit",
            "24",
            "--methods",
            "rollout,cls-attention,relevance",
            "--batch-size",
            "10",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert summary["images"] == len(rows) == 24

    data = make_synthetic(seed=2, train_per_class=500, val_per_class=50, test_per_class=50).val
    model = load_checkpoint(random_checkpoint).build_model()
    with torch.no_grad():
        pred = model((data.images[:24].float() / 255 - 0.5) / 0.5).argmax(-1)
    expected = (pred == data.labels[:24]).float().mean().item()
    assert summary["accuracy"] == pytest.approx(expected)
    smm = [float(r["rollout/smm"]) for r in rows if r["rollout/smm"] != ""]
    assert summary["methods"]["rollout"]["smm"]["mean"] == pytest.approx(np.mean(smm))
    assert set(summary["methods"]) == {"rollout", "cls-attention", "relevance"}


def test_evaluate_faithfulness_deletion_auc_matches_the_model(random_checkpoint, tmp_path):
    out = tmp_path / "faith"
    code = main(
        [
            "evaluate",
            "--checkpoint",
            str(random_checkpoint),
            "--data",
            "synthetic",
            "--seed",
            "2",
            "--split",
            "val",
            "--limit",
            "3",
            "--methods",
            "cls-attention",
            "--faithfulness",
            "1",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    data = make_synthetic(seed=2, train_per_class=500, val_per_class=50, test_per_class=50).val
    model = load_checkpoint(random_checkpoint).build_model()
    with torch.no_grad():
        x = (data.images[:3].float() / 255 - 0.5) / 0.5
        probs = model(x).softmax(-1)
        deleted = model(torch.zeros_like(x)).softmax(-1)  # every pixel deleted: all zeros
    for i, row in enumerate(rows):
        c = int(probs[i].argmax())
        # One step: the curve is (0, p_original) -> (1, p_all_deleted); trapezoid area.
        expected = (float(probs[i, c]) + float(deleted[i, c])) / 2
        assert float(row["cls-attention/deletion_auc"]) == pytest.approx(expected, abs=1e-5)
        assert 0.0 <= float(row["cls-attention/insertion_auc"]) <= 1.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods"]["cls-attention"]["deletion_auc"]["defined"] == 3


@pytest.mark.parametrize("method", ["rollout", "attention", "cls-attention", "relevance"])
def test_explain_export_per_method(method, random_checkpoint, sample_files, tmp_path, capsys):
    """Per method: the JSON keeps only the settings it reads (the registry's list), the raw
    .npy is the pipeline's unnormalised map, the PNG is the 256 px figure with a colour bar and
    the mask outlined, and a missing --out is created with one line saying so."""
    from inspector.core.explain import capture_image, load_image, open_model
    from inspector.core.saliency import MapSettings, compute_map, registry

    image_path, mask_path, _, _ = sample_files
    out = tmp_path / "new" / "out"
    args = ["explain", "--checkpoint", str(random_checkpoint), "--image", str(image_path)]
    args += ["--mask", str(mask_path), "--method", method, "--size", "256"]
    assert main(args + ["--device", "cpu", "--out", str(out)]) == 0
    assert f"created folder {out}" in capsys.readouterr().out.splitlines()[0]
    record = json.loads((out / "shape.json").read_text())
    settings = record["settings"]
    display = {"smoothing", "threshold", "colormap", "opacity"}
    assert set(settings) - display == {"method"} | set(registry.get(method).uses)
    assert record["mask"]["source"] == "file" and record["mask"]["path"] == str(mask_path)
    # The raw map against an independent capture of the same weights (method's own values).
    loaded_model = open_model(random_checkpoint)
    cap = capture_image(loaded_model, load_image(image_path, loaded_model))
    used = MapSettings(**{k: v for k, v in settings.items() if k not in display})
    ref = compute_map(cap, settings=used, rescale=False)
    raw = np.load(out / f"shape_{method}_raw.npy")
    np.testing.assert_allclose(raw.astype(np.float64), ref.astype(np.float64), rtol=1e-5)
    fig = record["figure"]
    assert fig["size"] == [256, 256] and fig["outline"]["width"] == 1
    png = np.asarray(Image.open(out / f"shape_{method}.png").convert("RGB"))
    assert png.shape[1] > 256 and fig["bar_box"][0] >= 256
