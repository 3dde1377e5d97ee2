"""Where one training epoch of the paper's baseline spends its time: a torch.profiler table.

    python benchmarks/profile_step.py [--preset baseline] [--threads 1] [--rows 25] [--out FILE]

The real ``train()`` loop is profiled, not a copy of it: the profiler starts when epoch 1 ends
(one-off costs such as the kernel load are behind it) and stops when epoch 2 ends, so the
table holds one whole epoch as the study runs it: 40 training steps of batch 128 on 5,000
synthetic images, the validation pass and the checkpoint writes. Operators are sorted by
self CPU time; the header gives the epoch's wall and CPU seconds without the profiler (a
separate, unprofiled epoch 3), since the profiler's own bookkeeping inflates small operators.
With ``--out`` the same text is also written to FILE (docs/results/profile_*.txt).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inspector.core import fastattn  # noqa: E402
from inspector.core.config import TrainConfig, preset  # noqa: E402
from inspector.core.data import make_synthetic  # noqa: E402
from inspector.core.train import EpochEvent, train  # noqa: E402


def profile_epoch(name: str, rows: int) -> str:
    data = make_synthetic(seed=0)
    prof = profile(activities=[ProfilerActivity.CPU])
    marks: list[tuple[float, float]] = []

    def on_event(event) -> None:
        if not isinstance(event, EpochEvent):
            return
        marks.append((time.perf_counter(), time.process_time()))
        if event.epoch == 1:
            prof.start()
        elif event.epoch == 2:
            prof.stop()

    with tempfile.TemporaryDirectory() as tmp:
        train(preset(name), TrainConfig(epochs=3, device="cpu"), data, tmp, callback=on_event)
    wall, cpu = marks[2][0] - marks[1][0], marks[2][1] - marks[1][1]
    text = io.StringIO()
    print(
        f"preset {name}; torch {torch.__version__}; {torch.get_num_threads()} thread(s); "
        f"attention: {fastattn.kernel_status()}; load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores",
        file=text,
    )
    print(
        f"one epoch (40 steps, validation, checkpoints), unprofiled: {wall:.2f} s wall, "
        f"{cpu:.2f} s CPU",
        file=text,
    )
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows), file=text)
    return text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="baseline")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the study's 1)")
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)  # this script is its own process
    text = profile_epoch(args.preset, args.rows)
    print(text)
    if args.out is not None:
        from inspector.core.export import save_text

        save_text(args.out, text, overwrite=True)


if __name__ == "__main__":
    main()
