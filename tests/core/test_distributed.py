"""DDP: ``torchrun --nproc-per-node 2 -m inspector.cli train`` (a 2-process gloo group) against
one process with the same global batch and seed, including a resume between the epochs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from inspector.core.checkpoint import load_checkpoint
from inspector.core.config import TrainConfig, preset
from inspector.core.data import load_dataset
from inspector.core.distributed import Replicas, World
from inspector.core.train import train

REPO = Path(__file__).resolve().parents[2]
# 100 images in batches of 25 over 2 ranks: uneven shards of 13 and 12 images, so the loss
# scaling (not just DDP's average) is what makes the update equal one process's.
ARGS = ["--data", "synthetic", "--train-per-class", "10", "--batch-size", "25", "--device", "cpu"]


def _torchrun(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["-m", "inspector.cli", "train", *ARGS, "--out", str(out), *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _assert_same_run(ddp_dir: Path, one_dir: Path) -> None:
    mine, ref = load_checkpoint(ddp_dir / "last.pt"), load_checkpoint(one_dir / "last.pt")
    assert mine.state_dict.keys() == ref.state_dict.keys()
    # Float tolerance: the two runs sum the same gradients in another order (1e-7 apart), and
    # Adam divides by sqrt(v), so near-zero gradients turn that into ~lr * 1e-3 after a few
    # steps. A wrong loss scale or a missing all-reduce moves weights by ~lr = 1e-2.
    for name, tensor in ref.state_dict.items():
        torch.testing.assert_close(mine.state_dict[name], tensor, rtol=0, atol=2e-4, msg=name)
    assert [r["epoch"] for r in mine.history] == [r["epoch"] for r in ref.history]
    for got, want in zip(mine.history, ref.history, strict=True):
        assert got["train_loss"] == pytest.approx(want["train_loss"], abs=1e-5)
        assert got["train_acc"] == want["train_acc"]
        assert got["val_loss"] == pytest.approx(want["val_loss"], abs=1e-5)
    assert sorted(p.name for p in ddp_dir.iterdir()) == sorted(p.name for p in one_dir.iterdir())


@pytest.mark.slow
def test_two_process_gloo_run_matches_one_process_and_resumes(tmp_path):
    data = load_dataset("synthetic", classes=10, seed=0, train_per_class=10)
    cfg = preset("baseline", num_classes=10, image_size=64)
    one, ddp = tmp_path / "one", tmp_path / "ddp"
    # One epoch, then a resume to two (the schedule follows --epochs, so both sides do the
    # same): rank 0's files resume the whole group.
    train(cfg, TrainConfig(epochs=1, batch_size=25, device="cpu"), data, one)
    first = _torchrun(ddp, "--epochs", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    _assert_same_run(ddp, one)

    train(cfg, TrainConfig(epochs=2, batch_size=25, device="cpu"), data, one, resume=True)
    second = _torchrun(ddp, "--epochs", "2", "--resume")
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("trained 2 epochs") == 1  # rank 0 alone reports
    _assert_same_run(ddp, one)


def test_one_process_is_the_plain_model():
    model = torch.nn.Linear(2, 2)
    replicas = Replicas(model, torch.device("cpu"))
    assert replicas.world == World() and replicas.model is model
    idx = torch.arange(7)
    assert torch.equal(replicas.shard(idx), idx)
    loss = torch.tensor(1.5)
    assert replicas.loss_to_backward(loss, 7, 7) is loss
    assert replicas.check_batches(5, 2) is None
