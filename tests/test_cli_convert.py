"""`vit-inspector convert` and the checkpoint-option flags of `explain`: what the file cannot tell
is asked for, given with flags, and kept when the model is saved in our format."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inspector.cli import main
from inspector.core.checkpoint import load_checkpoint
from inspector.core.interop import open_checkpoint

sys.path.insert(0, str(Path(__file__).parent / "core" / "interop"))
from test_interop_paper import IMG, paper_forward, paper_state_dict  # noqa: E402


@pytest.fixture
def paper_file(tmp_path) -> Path:
    """The paper's layout (4 heads, 2 blocks, width 8, LayerNorm, residuals, learned positions)
    under a name that does NOT follow its convention, so the heads cannot be known."""
    path = tmp_path / "my_paper_model.pth"
    torch.save(paper_state_dict(8, 2, True, "learned", seed=7), path)
    return path


@pytest.fixture
def image_file(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "picture.png"
    Image.fromarray(rng.integers(0, 256, (IMG, IMG, 3), dtype=np.uint8)).save(path)
    return path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vit-inspector: error:"), err
    return err[0]


def test_explain_asks_for_heads_then_works_with_them(paper_file, image_file, tmp_path, capsys):
    out = tmp_path / "out"
    args = [
        "explain",
        "--checkpoint",
        str(paper_file),
        "--image",
        str(image_file),
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert main(args) == 2
    assert "--heads" in _one_line_error(capsys)
    assert not out.exists()

    assert main([*args, "--heads", "4"]) == 0
    record = json.loads((out / "picture.json").read_text())
    assert np.load(out / "picture_rollout.npy").shape == (IMG // 8, IMG // 8)
    # The paper's inputs are ToTensor() images (mean 0, std 1) of the model's size: the top
    # prediction is the float64 re-implementation's, on pixels / 255.
    pixels = np.asarray(Image.open(image_file), dtype=np.float64) / 255.0
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    probs, _ = paper_forward(
        torch.load(paper_file, weights_only=True), x, heads=4, residual=True, layernorm=True
    )
    top = record["predictions"][0]
    assert top["class"] == int(probs.argmax())
    assert top["probability"] == pytest.approx(float(probs.max()), abs=1e-5)


def test_convert_keeps_weights_names_normalisation_and_provenance(paper_file, tmp_path, capsys):
    names = [f"thing {i}" for i in range(10)]
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n\n")
    out = tmp_path / "converted.pt"
    code = main(
        [
            "convert",
            "--checkpoint",
            str(paper_file),
            "--heads",
            "4",
            "--class-names",
            str(tmp_path / "names.txt"),
            "--normalisation",
            "half",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "4 heads" in capsys.readouterr().out

    ckpt = load_checkpoint(out)  # our own format, read by the plain loader
    assert ckpt.class_names == names
    assert ckpt.preprocess.mean == (0.5, 0.5, 0.5) and ckpt.preprocess.std == (0.5, 0.5, 0.5)
    assert ckpt.preprocess.policy == "resize"  # the paper's default is kept
    assert ckpt.config.num_heads == 4 and ckpt.config.output_softmax
    prov = ckpt.provenance
    assert prov["imported_from"] == "paper"
    assert prov["load_options"]["heads"] == 4 and prov["load_options"]["normalisation"] == "half"
    assert any("heads = 4" in n for n in prov["import_notes"])
    assert prov["converted_from"] == str(paper_file)

    images = torch.rand(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(1))
    sd = torch.load(paper_file, weights_only=True)
    ref, _ = paper_forward(sd, images, heads=4, residual=True, layernorm=True)  # float64
    imported = open_checkpoint(paper_file, heads=4).build_model()
    with torch.no_grad():
        saved_out = ckpt.build_model()(images)
        imported_out = imported(images)
    torch.testing.assert_close(saved_out.double(), ref, atol=1e-5, rtol=0)
    assert torch.equal(saved_out, imported_out)
    # Opening the converted file through the importer remembers where it came from.
    assert open_checkpoint(out).provenance["imported_from"] == "paper"


def test_convert_never_replaces_a_file_silently(paper_file, tmp_path, capsys):
    out = tmp_path / "exists.pt"
    out.write_bytes(b"precious")
    args = ["convert", "--checkpoint", str(paper_file), "--heads", "4", "--out", str(out)]
    assert main(args) == 2
    assert "overwrite" in _one_line_error(capsys)
    assert out.read_bytes() == b"precious"
    assert main([*args, "--overwrite"]) == 0
    assert load_checkpoint(out).config.num_heads == 4


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--class-names", "three.txt"], "3 class names"),
        (["--image-size", "50"], "multiple of the patch size"),
        (["--class-names", "missing.txt"], "does not exist"),
    ],
)
def test_convert_bad_options_are_one_line(paper_file, tmp_path, capsys, monkeypatch, extra, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    code = main(
        [
            "convert",
            "--checkpoint",
            str(paper_file),
            "--heads",
            "4",
            "--out",
            str(tmp_path / "x.pt"),
            *extra,
        ]
    )
    assert code == 2
    assert needle in _one_line_error(capsys)
    assert not (tmp_path / "x.pt").exists()


def test_timm_file_converted_for_another_input_size(tmp_path, capsys):
    timm = pytest.importorskip("timm", reason="timm is a test dependency")
    from timm.layers import resample_abs_pos_embed
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    torch.manual_seed(0)
    orig = TimmViT(
        img_size=32,
        patch_size=8,
        embed_dim=16,
        depth=2,
        num_heads=2,
        num_classes=5,
        dynamic_img_size=True,
    ).eval()
    with torch.no_grad():
        for p in orig.parameters():  # away from the trivial init, so the comparison can fail
            p.add_(torch.randn(p.shape) * 0.2)
    src = tmp_path / "timm_vit.pth"
    torch.save(orig.state_dict(), src)
    out = tmp_path / "vit48.pt"
    assert (
        main(
            [
                "convert",
                "--checkpoint",
                str(src),
                "--heads",
                "2",
                "--image-size",
                "48",
                "--out",
                str(out),
            ]
        )
        == 0
    ), capsys.readouterr().err

    ckpt = load_checkpoint(out)
    assert ckpt.config.image_size == 48 and ckpt.preprocess.image_size == 48
    assert ckpt.state_dict["pos_embed"].shape == (1, 1 + 6 * 6, 16)
    ref_pos = resample_abs_pos_embed(
        orig.pos_embed.detach(), new_size=(6, 6), old_size=(4, 4), num_prefix_tokens=1
    )
    torch.testing.assert_close(ckpt.state_dict["pos_embed"], ref_pos, atol=1e-6, rtol=0)
    assert ckpt.provenance["pos_embed_resampled"] == {"from": 32, "to": 48}
    images = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = ckpt.build_model()(images)
        theirs = orig(images)  # timm resamples its own table for 48x48 inputs
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    assert timm is not None
