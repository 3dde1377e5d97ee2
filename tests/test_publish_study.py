"""scripts/publish_study.py: a finished study's report and final models are copied, never
silently over existing files, and an unfinished study is refused."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location(
        "publish_study", ROOT / "scripts" / "publish_study.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _study(folder: Path, presets=("baseline", "heads-2"), seeds=(0, 1)) -> None:
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(
        json.dumps({"study": {"presets": list(presets), "seeds": list(seeds)}})
    )
    for name in ("report.md", "report.csv", "saliency.png"):
        (folder / name).write_bytes(name.encode())
    for sub in ("confusion", "curves"):
        (folder / sub).mkdir()
        for p in presets:
            (folder / sub / f"{p}.png").write_bytes(f"{sub}/{p}".encode())
    for p in presets:
        for s in seeds:
            run = folder / "runs" / p / f"seed-{s}"
            run.mkdir(parents=True)
            (run / "last.pt").write_bytes(f"{p}-{s}".encode())
            (run / "history.json").write_text("[]")  # training files are not published


def test_copies_report_and_models_and_refuses_to_overwrite(tmp_path):
    publish = _script()
    _study(tmp_path / "study")
    report, ckpts = tmp_path / "docs" / "r", tmp_path / "ckpt"
    argv = [str(tmp_path / "study"), "--report", str(report), "--checkpoints", str(ckpts)]
    assert publish.main(argv) == 0
    assert (report / "report.md").read_bytes() == b"report.md"
    assert (report / "curves" / "heads-2.png").read_bytes() == b"curves/heads-2"
    assert (ckpts / "baseline.pt").read_bytes() == b"baseline-0"  # first seed at the top
    assert (ckpts / "seed-1" / "heads-2.pt").read_bytes() == b"heads-2-1"
    assert not list(report.rglob("history.json")) and not (report / "runs").exists()
    (ckpts / "baseline.pt").write_bytes(b"mine")
    assert publish.main(argv) == 1  # existing files: refused, untouched
    assert (ckpts / "baseline.pt").read_bytes() == b"mine"
    assert publish.main([*argv, "--force"]) == 0
    assert (ckpts / "baseline.pt").read_bytes() == b"baseline-0"


def test_an_unfinished_study_is_refused(tmp_path):
    publish = _script()
    _study(tmp_path / "study")
    (tmp_path / "study" / "runs" / "heads-2" / "seed-1" / "last.pt").unlink()
    with pytest.raises(SystemExit, match="missing in the study"):
        publish.main(
            [
                str(tmp_path / "study"),
                "--report",
                str(tmp_path / "r"),
                "--checkpoints",
                str(tmp_path / "c"),
            ]
        )
    (tmp_path / "study" / "report.json").unlink()
    with pytest.raises(SystemExit, match="no report.json"):
        publish.main([str(tmp_path / "study"), "--report", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()
