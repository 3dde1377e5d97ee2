"""Hostile and careless input to the CLI (issue 13): each case is one line and a non-zero exit,
or a correct run, never a traceback, partial output or a silently wrong answer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from inspector.cli import main
from inspector.core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from inspector.core.config import Preprocess, preset
from inspector.core.data import make_synthetic
from inspector.core.model import VisionTransformer


def one_line_error(capsys, rc: int) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert rc == 2, (rc, captured.err)
    assert len(err) == 1 and err[0].startswith("vit-inspector: error:"), err
    return err[0]


def _ckpt(names=None) -> Checkpoint:
    torch.manual_seed(0)
    model = VisionTransformer(preset("baseline")).eval()
    return Checkpoint.from_model(
        model, class_names=names or [f"class {i}" for i in range(10)], preprocess=Preprocess()
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    ckpt = _ckpt()
    out = {"ckpt": save_checkpoint(root / "model.pt", ckpt)}
    data = make_synthetic(seed=5, train_per_class=1, val_per_class=1, test_per_class=1)
    image = data.test.images[0].permute(1, 2, 0).numpy()  # (64, 64, 3)
    Image.fromarray(image).save(root / "shape.png")
    Image.fromarray(data.test.masks[0].numpy().astype(np.uint8) * 255).save(root / "mask.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(root / "empty_mask.png")
    Image.fromarray(np.full((32, 48), 255, np.uint8)).save(root / "small_mask.png")
    out.update(
        image=root / "shape.png",
        mask=root / "mask.png",
        empty_mask=root / "empty_mask.png",
        small_mask=root / "small_mask.png",
    )
    return out


def _explain(files, out, *extra, checkpoint=None, image=None) -> int:
    return main(
        [
            "explain",
            "--checkpoint",
            str(checkpoint or files["ckpt"]),
            "--image",
            str(image or files["image"]),
            "--device",
            "cpu",
            "--out",
            str(out),
            *extra,
        ]
    )


# ------------------------------------------------------------------- checkpoints (8, 9, 22)
def test_float64_checkpoint_gives_the_float32_models_answers(files, tmp_path, capsys):
    ckpt = load_checkpoint(files["ckpt"])
    ckpt.state_dict = {k: v.double() for k, v in ckpt.state_dict.items()}
    double = save_checkpoint(tmp_path / "double.pt", ckpt)
    assert _explain(files, tmp_path / "a", checkpoint=double) == 0
    assert _explain(files, tmp_path / "b") == 0
    a = json.loads((tmp_path / "a" / "shape.json").read_text())["predictions"]
    b = json.loads((tmp_path / "b" / "shape.json").read_text())["predictions"]
    assert a == b  # float32 -> float64 -> float32 is exact: the very same probabilities
    np.testing.assert_array_equal(
        np.load(tmp_path / "a" / "shape_rollout.npy"), np.load(tmp_path / "b" / "shape_rollout.npy")
    )


def test_nan_weights_are_refused_with_one_line(files, tmp_path, capsys):
    ckpt = load_checkpoint(files["ckpt"])
    ckpt.state_dict["head.weight"] = torch.full_like(ckpt.state_dict["head.weight"], np.nan)
    bad = save_checkpoint(tmp_path / "nan.pt", ckpt)
    rc = _explain(files, tmp_path / "o", checkpoint=bad)
    line = one_line_error(capsys, rc)
    assert "NaN" in line and "head.weight" in line
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_config_changed_after_saving_is_refused_old_files_still_load(files, tmp_path, capsys):
    payload = torch.load(files["ckpt"], weights_only=True)
    # 4 -> 2 heads: every tensor keeps its shape, so only the digest can tell.
    payload["config"] = {**payload["config"], "num_heads": 2}
    torch.save(payload, tmp_path / "edited.pt")
    line = one_line_error(
        capsys, _explain(files, tmp_path / "o", checkpoint=tmp_path / "edited.pt")
    )
    assert "digest" in line and "different model" in line
    # A file from before the digest (none stored) loads as it always did.
    old = torch.load(files["ckpt"], weights_only=True)
    del old["config_digest"]
    torch.save(old, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").config == preset("baseline")
    assert _explain(files, tmp_path / "p", checkpoint=tmp_path / "old.pt") == 0


# -------------------------------------------------------------------------- images (11, 12)
def test_image_size_far_too_large_is_a_bound_not_an_allocation(files, tmp_path, capsys):
    line = one_line_error(capsys, _explain(files, tmp_path / "o", "--image-size", "100000"))
    assert "8192" in line
    # Below the absolute bound but too many patches for the 8 px patches of this model.
    line = one_line_error(capsys, _explain(files, tmp_path / "o", "--image-size", "4096"))
    assert "patches" in line and "256" in line  # 32 x 32 patches of 8 px


def test_decompression_bomb_is_refused(files, tmp_path, capsys):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (15000, 15000)).save(bomb)  # 27 KB on disk, 225 megapixels
    assert bomb.stat().st_size < 100_000
    line = one_line_error(capsys, _explain(files, tmp_path / "o", image=bomb))
    assert "decompression bomb" in line
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


# ---------------------------------------------------------------------- masks (5, 14, 23)
def test_mask_of_another_size_is_refused_naming_both_sizes(files, tmp_path, capsys):
    rc = _explain(files, tmp_path / "o", "--mask", str(files["small_mask"]))
    line = one_line_error(capsys, rc)
    assert "48x32" in line and "64x64" in line  # main's pipeline policy (width x height)
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_all_zero_mask_scores_are_undefined_not_perfect(files, tmp_path, capsys):
    assert _explain(files, tmp_path / "o", "--mask", str(files["empty_mask"])) == 0
    assert "SMM undefined" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "o" / "shape.json").read_text())["metrics"]
    assert metrics["smm"] is None  # (mAP: main pools both channels, which stays defined)
    assert metrics["mask_fraction"] == 0.0


def test_dangling_symlink_among_outputs_is_refused_before_any_write(files, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "shape.json").symlink_to(tmp_path / "nowhere.json")
    line = one_line_error(capsys, _explain(files, out))
    assert "shape.json" in line
    assert sorted(p.name for p in out.iterdir()) == ["shape.json"]  # no PNG, no .npy
    assert not (tmp_path / "nowhere.json").exists()  # never written through


# ------------------------------------------------------------------------ printing (18)
def test_class_names_with_terminal_escapes_are_printed_escaped(files, tmp_path, capsys):
    evil = [f"\x1b[2J\x1b[31mclass {i}\x07" for i in range(10)]
    path = save_checkpoint(tmp_path / "evil.pt", _ckpt(evil))
    assert _explain(files, tmp_path / "o", checkpoint=path) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b[2J" in out
    assert main(["convert", "--checkpoint", str(path), "--out", str(tmp_path / "c.pt")]) == 0
    captured = capsys.readouterr()
    assert "\x1b" not in captured.out + captured.err


# ---------------------------------------------------------------------- arguments (10, 13, 15, 16)
def test_convert_onto_a_folder_is_a_one_line_error(files, tmp_path, capsys):
    folder = tmp_path / "existing"
    folder.mkdir()
    rc = main(["convert", "--checkpoint", str(files["ckpt"]), "--out", str(folder), "--overwrite"])
    assert "is a folder" in one_line_error(capsys, rc)
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("limit", ["0", "-5"])
def test_evaluate_limit_below_one_is_refused(files, tmp_path, capsys, limit):
    rc = main(
        [
            "evaluate",
            "--checkpoint",
            str(files["ckpt"]),
            "--data",
            "synthetic",
            "--limit",
            limit,
            "--out",
            str(tmp_path / "e"),
        ]
    )
    assert "--limit" in one_line_error(capsys, rc)
    assert not (tmp_path / "e").exists()


def test_train_per_class_zero_is_refused_by_train_and_ablate(tmp_path, capsys):
    base = ["--data", "synthetic", "--train-per-class", "0", "--epochs", "1"]
    rc = main(["train", *base, "--out", str(tmp_path / "t")])
    assert "--train-per-class" in one_line_error(capsys, rc)
    rc = main(["ablate", *base, "--only", "baseline", "--out", str(tmp_path / "a")])
    assert "train_per_class" in one_line_error(capsys, rc)
    assert not (tmp_path / "t").exists() and not (tmp_path / "a").exists()  # no study.json


@pytest.fixture
def three_class_folder(tmp_path):
    root = tmp_path / "folder"
    rng = np.random.default_rng(0)
    for name in ("cat", "dog", "owl"):
        (root / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
                root / name / f"{i}.png"
            )
    return root


@pytest.mark.parametrize("classes", ["50", "2"])
def test_classes_other_than_an_image_folders_is_refused(
    three_class_folder, tmp_path, capsys, classes
):
    rc = main(
        [
            "train",
            "--data",
            str(three_class_folder),
            "--classes",
            classes,
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    line = one_line_error(capsys, rc)
    assert f"{classes} classes" in line and "has 3" in line
    assert not (tmp_path / "run").exists()


def test_image_folder_without_classes_trains_on_all_of_them(three_class_folder, tmp_path):
    rc = main(
        [
            "train",
            "--data",
            str(three_class_folder),
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert rc == 0
    assert load_checkpoint(tmp_path / "run" / "last.pt").class_names == ["cat", "dog", "owl"]


def test_a_model_too_large_for_the_machine_is_refused_before_allocating(tmp_path, capsys):
    argv = ["train", "--data", "synthetic", "--train-per-class", "1", "--epochs", "1",
            "--hidden-size", "100000000", "--out", str(tmp_path / "r")]  # fmt: skip
    rc = main(argv)
    assert "parameters" in one_line_error(capsys, rc)
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


@pytest.mark.parametrize("changes", [{}, {"hidden_size": 32}, {"depth": 8}, {"num_heads": 1}])
def test_the_size_estimate_bounds_the_real_parameter_count(changes):
    from inspector.core.config import ViTConfig

    cfg = ViTConfig(**changes)
    real = sum(p.numel() for p in VisionTransformer(cfg).parameters())
    assert real <= cfg.approx_parameters <= 1.25 * real
