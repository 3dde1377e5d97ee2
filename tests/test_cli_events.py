"""``--events json`` (issue 11): what the GUI reads from its training and study processes.

Every stdout line must be one JSON object; the epoch events must carry exactly the rows the
run wrote to ``history.json``; SIGTERM must still stop at a safe point with exit 143 and a
``result`` event saying ``stopped``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from inspector.cli import main
from inspector.core.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parent.parent
TINY = ["--data", "synthetic", "--classes", "3", "--train-per-class", "3",
        "--val-per-class", "2", "--device", "cpu"]  # fmt: skip


def events(text: str) -> list[dict]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    parsed = [json.loads(ln) for ln in lines]  # every line is JSON: nothing else on stdout
    assert all(isinstance(e, dict) and "event" in e for e in parsed)
    return parsed


def test_train_events_are_the_runs_own_numbers(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", *TINY, "--epochs", "2", "--batch-size", "4", "--events", "json",
               "--depth", "2", "--heads", "2", "--no-layernorm", "--pos-encoding", "learned",
               "--out", str(out)])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0 and captured.err == ""
    evs = events(captured.out)
    kinds = [e["event"] for e in evs]
    assert kinds[0] == "loaded" and kinds[-1] == "result"
    assert evs[0]["train"] == 9 and evs[0]["val"] == 6 and evs[0]["classes"] == 3
    history = json.loads((out / "history.json").read_text())
    epochs = [e for e in evs if e["event"] == "epoch"]
    assert [e["metrics"] for e in epochs] == history
    assert [e["epoch"] for e in epochs] == [1, 2] and all(e["epochs"] == 2 for e in epochs)
    steps = [e for e in evs if e["event"] == "step"]
    # The last step of every epoch is always sent (the throttle never hides an epoch's end).
    assert {(e["epoch"], e["step"]) for e in steps} >= {(1, 3), (2, 3)}
    assert all(e["total_steps"] == 6 and e["steps_per_epoch"] == 3 for e in steps)
    result = evs[-1]
    assert result["status"] == "finished" and result["best"] == str(out / "best.pt")
    assert result["epochs_done"] == 2
    cfg = load_checkpoint(out / "last.pt").config
    assert (cfg.depth, cfg.num_heads, cfg.layernorm, cfg.pos_encoding) == (
        2, 2, False, "learned",
    )  # fmt: skip


def test_train_events_error_is_one_line_on_stderr(tmp_path, capsys):
    rc = main(["train", "--data", str(tmp_path), "--data-format", "tiny-imagenet",
               "--events", "json", "--out", str(tmp_path / "o")])  # fmt: skip
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "wnids" in err[0], captured.err
    assert captured.out == ""


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_sigterm_with_json_events_exits_143_with_a_stopped_result(tmp_path):
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "inspector.cli", "train", *TINY, "--epochs", "50",
            "--batch-size", "2", "--events", "json", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    seen = []
    for line in proc.stdout:
        seen.append(json.loads(line))
        if seen[-1]["event"] == "epoch":  # the first epoch is committed
            proc.send_signal(signal.SIGTERM)
            break
    rest, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err
    tail = events(rest)
    assert tail[-1]["event"] == "result" and tail[-1]["status"] == "stopped"
    assert tail[-1]["best"] is None  # only a finished run names a model to open
    done = tail[-1]["epochs_done"]
    assert 1 <= done < 50
    assert len(json.loads((out / "history.json").read_text())) == done
    assert "Traceback" not in err and "--resume" in err


def test_ablate_events_end_with_the_reports_rows(tmp_path, capsys):
    out = tmp_path / "study"
    rc = main(["ablate", *TINY, "--test-per-class", "2", "--threads", "1", "--epochs", "1",
               "--only", "baseline,heads-2", "--events", "json", "--out", str(out)])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    evs = events(captured.out)
    kinds = [e["event"] for e in evs]
    assert kinds[0] == "start" and kinds[-2:] == ["done", "result"]
    assert [e["preset"] for e in evs if e["event"] == "model_done"] == ["baseline", "heads-2"]
    for e in evs[:-1]:  # the core's StudyEvent fields, as they are
        assert {"kind", "fraction", "index", "total", "preset", "seed", "message"} <= set(e)
    result = evs[-1]
    report = json.loads((out / "report.json").read_text())
    assert result["status"] == "finished" and result["rows"] == report["rows"]
    assert result["report"] == str(out / "report.md")
