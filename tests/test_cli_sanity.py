"""``vit-inspector sanity`` end to end: the files it writes, their agreement, and bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from inspector.cli import main
from inspector.core.data import make_synthetic
from inspector.core.export import read_png_metadata
from inspector.paths import REPO_ROOT

TRAINED = REPO_ROOT / "checkpoints" / "synthetic-baseline.pt"
pytestmark = pytest.mark.skipif(not TRAINED.exists(), reason=f"{TRAINED} not found")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    data = make_synthetic(seed=6, train_per_class=1, val_per_class=1, test_per_class=1).test
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i in range(2):
        path = folder / f"img{i}.png"
        Image.fromarray(data.images[i].permute(1, 2, 0).numpy()).save(path)
        paths.append(path)
    return paths


def _args(images, out, *extra):
    return [
        "sanity",
        "--checkpoint",
        str(TRAINED),
        "--image",
        *map(str, images),
        "--device",
        "cpu",
        "--out",
        str(out),
        *extra,
    ]


def test_sanity_writes_json_csv_png_that_agree(images, tmp_path, capsys):
    out = tmp_path / "sanity"
    assert main(_args(images, out, "--method", "rollout")) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "sanity.json").read_text())
    layers = ["original", "head", "blocks.3", "blocks.2", "blocks.1", "blocks.0", "embeddings"]
    assert record["layers"] == layers
    assert record["settings"]["method"] == "rollout"
    rows = list(csv.DictReader((out / "sanity.csv").open()))
    assert len(rows) == len(layers) * len(images)
    assert [r["layer"] for r in rows[:: len(images)]] == layers
    for step, per in enumerate(record["per_layer"]):
        mine = [r for r in rows if int(r["step"]) == step]
        assert per["ssim"] == pytest.approx(np.mean([float(r["ssim"]) for r in mine]))
        assert per["spearman"] == pytest.approx(np.mean([float(r["spearman"]) for r in mine]))
        assert per["layer"] in printed
    assert record["per_layer"][0]["spearman"] == pytest.approx(1.0)
    assert record["per_layer"][0]["ssim"] == pytest.approx(1.0)
    assert record["per_layer"][-1]["spearman"] < 0.5
    with Image.open(out / "sanity.png") as im:
        assert im.mode == "RGB"
        w, h = im.size
    assert w > h  # one row of tiles per image, a tile per step plus the input
    assert read_png_metadata(out / "sanity.png")["method"] == "rollout"

    # A second run refuses to overwrite and leaves the files as they were.
    before = (out / "sanity.json").read_bytes()
    assert main(_args(images, out, "--method", "cls-attention")) == 2
    err = capsys.readouterr().err
    assert err.startswith("vit-inspector: error:") and "exist" in err
    assert (out / "sanity.json").read_bytes() == before
    assert main(_args(images[:1], out, "--method", "cls-attention", "--overwrite")) == 0
    assert json.loads((out / "sanity.json").read_text())["settings"]["method"] == "cls-attention"


@pytest.mark.parametrize(
    "bad",
    [
        lambda tmp, imgs: _args([tmp / "missing.png"], tmp / "o"),
        lambda tmp, imgs: _args([imgs[0], imgs[0]], tmp / "o"),
        lambda tmp, imgs: _args(imgs[:1], tmp / "o", "--class", "99", "--method", "relevance"),
        lambda tmp, imgs: [
            *_args(imgs[:1], tmp / "o")[:2],
            str(tmp / "nope.pt"),
            *_args(imgs[:1], tmp / "o")[3:],
        ],
        lambda tmp, imgs: _args([_text_file(tmp)], tmp / "o"),
    ],
    ids=[
        "missing image",
        "same image twice",
        "class out of range",
        "no checkpoint",
        "not an image",
    ],
)
def test_bad_input_is_one_line_and_rc_2(bad, images, tmp_path, capsys):
    assert main(bad(tmp_path, images)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vit-inspector: error:"), err
    assert not (tmp_path / "o" / "sanity.json").exists()


def _text_file(tmp):
    path = tmp / "notes.png"
    path.write_text("not a picture")
    return path
