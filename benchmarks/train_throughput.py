"""Training throughput of the paper's models on this machine.

    python benchmarks/train_throughput.py [--device cpu] [--threads N] [--full-run] [--study]

Prints training images/s (one epoch on the 5,000-image synthetic training set, validation
excluded) for ``baseline``, ``hidden-32`` and ``blocks-8``; with ``--full-run`` the measured wall
time of one 50-epoch baseline run (validation included); with ``--study`` an estimate of the
paper's whole 14-model study (50 epochs x 5,000 images each) from two timed epochs per preset.
Goal on a 2-core CPU: the 14-model study in 15 minutes or less.

``--threads 1`` measures one process of a ``--jobs 2 --threads 1`` ablation run: on a 2-core CPU
two such processes together train ~1.3x more images/s than one process with 2 threads (the
small kernels of these tiny models do not scale across threads), so the study's estimate for
that setting is the 1-thread estimate divided by 2.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inspector.core.config import PRESETS, TrainConfig, preset  # noqa: E402
from inspector.core.data import make_synthetic  # noqa: E402
from inspector.core.train import EpochEvent, train  # noqa: E402


def timed_train(name: str, data, epochs: int, device: str) -> tuple[float, float, float]:
    """Returns (train images/s of the last epoch, total wall seconds, last val accuracy)."""
    last: dict = {}

    def on_event(event):
        if isinstance(event, EpochEvent):
            last.update(event.metrics)

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        train(preset(name), TrainConfig(epochs=epochs, device=device), data, tmp, callback=on_event)
        wall = time.perf_counter() - started
    return len(data.train) / last["seconds"], wall, last["val_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--full-run", action="store_true")
    parser.add_argument("--study", action="store_true")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for this process (default: PyTorch's choice)",
    )
    args = parser.parse_args()
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)  # this script is its own process: not global state
    devices = [args.device]
    if args.device == "cpu" and torch.cuda.is_available():
        devices.append("cuda")

    t = time.perf_counter()
    data = make_synthetic(seed=0)
    print(
        f"synthetic dataset ({len(data.train)}/{len(data.val)}/{len(data.test)} images) "
        f"generated in {time.perf_counter() - t:.1f} s; torch threads {torch.get_num_threads()}"
    )
    for device in devices:
        for name in ("baseline", "hidden-32", "blocks-8"):
            ips, _, _ = timed_train(name, data, 2, device)
            print(f"{device:5s} {name:12s} {ips:8.0f} train images/s")
    if args.full_run:
        _, wall, acc = timed_train("baseline", data, 50, args.device)
        print(
            f"one 50-epoch baseline run on {len(data.train)} images: {wall:.1f} s wall "
            f"(val accuracy {acc:.3f})"
        )
    if args.study:
        total = 0.0
        for name in PRESETS:
            _, wall, _ = timed_train(name, data, 2, args.device)
            total += wall * 25
            print(f"  {name:12s} ~{wall * 25:6.1f} s for 50 epochs")
        print(f"estimated 14-model study: {total / 60:.1f} min (goal <= 15 min)")


if __name__ == "__main__":
    main()
