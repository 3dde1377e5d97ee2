"""``vit-inspector ablate``: end to end on tiny synthetic data, and its one-line errors."""

from __future__ import annotations

import json

import pytest

from inspector.cli import main
from inspector.core.checkpoint import load_checkpoint

TINY = [
    "--data",
    "synthetic",
    "--classes",
    "3",
    "--train-per-class",
    "8",
    "--val-per-class",
    "2",
    "--test-per-class",
    "2",
    "--device",
    "cpu",
    "--threads",
    "1",
]


def _one_line_error(capsys, rc: int) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("vit-inspector: error:"), err
    return err[0]


def test_bad_only_name_is_a_one_line_error(tmp_path, capsys):
    rc = main(["ablate", *TINY, "--only", "baseline,heads-3", "--out", str(tmp_path / "s")])
    line = _one_line_error(capsys, rc)
    assert "heads-3" in line and "heads-2" in line  # names the bad one and lists the choices
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--threshold", "1.5"], "threshold"),
        (["--discard", "1.0"], "discard"),
        (["--seeds", "0"], "--seeds"),
        (["--jobs", "0"], "jobs"),
    ],
)
def test_bad_values_are_one_line_errors(tmp_path, capsys, args, words):
    rc = main(["ablate", *TINY, "--only", "baseline", *args, "--out", str(tmp_path / "s")])
    assert words in _one_line_error(capsys, rc)


def test_split_sizes_for_tiny_imagenet_are_refused(tmp_path, capsys):
    (tmp_path / "tin").mkdir()
    (tmp_path / "tin" / "wnids.txt").write_text("n01443537\n")
    rc = main(
        [
            "ablate",
            "--data",
            str(tmp_path / "tin"),
            "--test-per-class",
            "5",
            "--out",
            str(tmp_path / "s"),
        ]
    )
    assert "synthetic" in _one_line_error(capsys, rc)


def test_paper_faithful_study_end_to_end(tmp_path, capsys):
    out = tmp_path / "study"
    rc = main(
        [
            "ablate",
            *TINY,
            "--only",
            "baseline",
            "--epochs",
            "1",
            "--paper-faithful",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "| baseline" in captured.out and "report.md" in captured.out
    ckpt = load_checkpoint(out / "runs" / "baseline" / "seed-0" / "last.pt")
    assert ckpt.config.output_softmax is True  # the authors' double softmax
    assert "double softmax: **on**" in (out / "report.md").read_text()
    report = json.loads((out / "report.json").read_text())
    assert report["study"]["paper_faithful"] is True
    assert [r["preset"] for r in report["runs"]] == ["baseline"]
    # The same command again reuses the model and keeps the numbers.
    rc = main(
        [
            "ablate",
            *TINY,
            "--only",
            "baseline",
            "--epochs",
            "1",
            "--paper-faithful",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    again = json.loads((out / "report.json").read_text())
    assert again["runs"][0]["reused"] is True
    assert again["runs"][0]["accuracy"] == report["runs"][0]["accuracy"]
    # Without the switch the folder is another study's: refused in one line.
    capsys.readouterr()
    rc = main(["ablate", *TINY, "--only", "baseline", "--epochs", "1", "--out", str(out)])
    assert "paper_faithful" in _one_line_error(capsys, rc)
