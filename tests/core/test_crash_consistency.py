"""Crash consistency: SIGKILL at every write boundary, then resume, ends bit-identical.

``crash_harness.py`` (run in a subprocess, forking one child per scenario) kills a small
synthetic run just before and just after each atomic rename of an epoch's files, and resumes
it. Here every resumed folder is compared with the uninterrupted reference: the same weights
bit for bit (last.pt, best.pt and the run state's optimiser), the same history, no temporary
file left, and the same file set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from inspector.core.checkpoint import load_checkpoint
from inspector.core.run_state import load_run_state

HARNESS = Path(__file__).with_name("crash_harness.py")
REPO = HARNESS.parents[2]

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the harness forks (POSIX only)")


def _run_harness(mode: str, work: Path) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, str(HARNESS), mode, str(work)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _same_tree(a, b) -> bool:
    """Tensors compared bit for bit, everything else with ==."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return (
            isinstance(b, dict) and a.keys() == b.keys() and all(_same_tree(a[k], b[k]) for k in a)
        )
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_tree(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _check_run(ref: Path, run: Path) -> None:
    want, got = load_run_state(ref), load_run_state(run)
    assert (got.epoch, got.best_epoch, got.best_acc) == (want.epoch, want.best_epoch, want.best_acc)
    assert _same_weights(got.last.state_dict, want.last.state_dict)
    assert _same_weights(got.best.state_dict, want.best.state_dict)
    assert _same_tree(got.optimizer, want.optimizer)
    for name in ("last.pt", "best.pt"):
        a, b = load_checkpoint(ref / name), load_checkpoint(run / name)
        assert _same_weights(b.state_dict, a.state_dict), name
        assert b.provenance["epoch"] == a.provenance["epoch"], name
        assert _strip(b.history) == _strip(a.history), name
    history = json.loads((run / "history.json").read_text())
    assert _strip(history) == _strip(json.loads((ref / "history.json").read_text()))


def test_train_killed_at_every_write_resumes_bit_identical(tmp_path):
    report = _run_harness("train", tmp_path)
    assert report["ref"] == 0
    # Each of the 2 epochs commits the run state first, then derives the other files.
    assert report["writes"][:4] == ["run_state.pt", "last.pt", "best.pt", "history.json"]
    assert report["writes"].count("run_state.pt") == 2
    assert report["writes"][-1] == "history.json"
    assert len(report["scenarios"]) == 2 * len(report["writes"])  # before and after each
    ref = tmp_path / "ref"
    for s in report["scenarios"]:
        where = f"killed {s['phase']} write {s['write']} ({s['file']})"
        assert s["killed_rc"] == -9, where  # the kill really happened at that write
        assert s["resumed_rc"] == 0, where
        run = tmp_path / s["folder"]
        _check_run(ref, run)
        assert _files(run) == _files(ref), where  # no stray temporaries, nothing missing


TIMING = {"eval_seconds", "train_seconds", "reused", "settings"}


def test_ablate_killed_at_every_write_reruns_to_the_same_study(tmp_path):
    report = _run_harness("study", tmp_path)
    assert report["ref"] == 0
    assert "study.json" in report["writes"] and "report.md" in report["writes"]
    assert "runs/baseline/seed-0/run_state.pt" in report["writes"]
    assert len(report["scenarios"]) == len(report["writes"])  # before each rename
    ref = tmp_path / "ref"
    runs = json.loads((ref / "report.json").read_text())["runs"]
    numbers = [{k: v for k, v in r.items() if k not in TIMING} for r in runs]
    for s in report["scenarios"]:
        where = f"killed {s['phase']} write {s['write']} ({s['file']})"
        assert s["killed_rc"] == -9, where
        assert s["resumed_rc"] == 0, where
        out = tmp_path / s["folder"]
        _check_run(ref / "runs" / "baseline" / "seed-0", out / "runs" / "baseline" / "seed-0")
        got = json.loads((out / "report.json").read_text())["runs"]
        assert [{k: v for k, v in r.items() if k not in TIMING} for r in got] == numbers, where
        assert (out / "report.csv").read_bytes() == (ref / "report.csv").read_bytes(), where
        assert _files(out) == _files(ref), where
