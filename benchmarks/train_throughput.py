"""Training speed of the paper's models, side by side with the authors' naive model.

    python benchmarks/train_throughput.py [--threads N] [--epochs 3] [--profile] [--study]
                                          [--device cpu|cuda]

1. **Ratio.** One training epoch of the paper's baseline (4 blocks, 4 heads, hidden 8, batch
   128, 5,000 synthetic 64px images) with our ``train()``, against a plain reimplementation of
   the authors' model written here from the paper's description (per-head ``nn.Linear``
   q/k/v, ``nn.Softmax``, no output projection, pre-norm blocks, MLP ratio 4 with GELU, a class
   token, 1-D sine/cosine positions, 8px patches, Adam). The epochs are interleaved in this one
   process (ours, naive, ours, ...) so that load from other processes hits both alike; the
   ratio of the medians is printed. Goal: at most 0.5.
2. ``--profile``: a ``torch.profiler`` table of 10 training steps of the naive model, of ours
   with PyTorch's SDPA (before) and of ours with the compiled attention kernel (after).
3. ``--study``: the paper's 14-model study (50 epochs each) in minutes per seed, run as the
   study runs on 2 cores: two processes of one thread each (``ablate --jobs 2 --threads 1``).
   Every run is measured whole through the study's own ``_run_one`` for 2 epochs (model
   build, training, validation and checkpoints every epoch, the test evaluation with SMM);
   its other 48 epochs are the second epoch's time; the 14 runs are handed out in the study's
   order to 2 workers, each after its measured start-up (imports, data). Printed in wall
   seconds here and from CPU seconds (what a quiet machine would take), next to the older
   epochs-only figure (sum of epoch times x 50 / 2). Goal: at most 15 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inspector.core import fastattn  # noqa: E402
from inspector.core.config import PRESETS, TrainConfig, preset  # noqa: E402
from inspector.core.data import make_synthetic  # noqa: E402
from inspector.core.model import VisionTransformer, sincos_table  # noqa: E402
from inspector.core.preprocess import normalise_uint8  # noqa: E402
from inspector.core.study import StudySpec  # noqa: E402
from inspector.core.study.runner import _run_one  # noqa: E402
from inspector.core.study.spec import load_study_data  # noqa: E402
from inspector.core.train import EpochEvent, make_optimizer, train  # noqa: E402


# The authors' model, as the paper describes it --------------------------------------------
class NaiveMSA(nn.Module):
    """Per-head q/k/v ``nn.Linear`` maps on each head's slice, ``nn.Softmax``, heads
    concatenated, no output projection."""

    def __init__(self, d: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads, self.d_head = n_heads, d // n_heads
        self.q_mappings = nn.ModuleList(nn.Linear(self.d_head, self.d_head) for _ in range(n_heads))
        self.k_mappings = nn.ModuleList(nn.Linear(self.d_head, self.d_head) for _ in range(n_heads))
        self.v_mappings = nn.ModuleList(nn.Linear(self.d_head, self.d_head) for _ in range(n_heads))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        heads = []
        for h in range(self.n_heads):
            seq = x[:, :, h * self.d_head : (h + 1) * self.d_head]  # (B, T, dh)
            q, k, v = self.q_mappings[h](seq), self.k_mappings[h](seq), self.v_mappings[h](seq)
            attn = self.softmax(q @ k.transpose(-2, -1) / self.d_head**0.5)  # (B, T, T)
            heads.append(attn @ v)
        return torch.cat(heads, dim=-1)


class NaiveBlock(nn.Module):
    def __init__(self, d: int, n_heads: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.norm1, self.mhsa = nn.LayerNorm(d), NaiveMSA(d, n_heads)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(
            nn.Linear(d, mlp_ratio * d), nn.GELU(), nn.Linear(mlp_ratio * d, d)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x + self.mhsa(self.norm1(x))
        return out + self.mlp(self.norm2(out))


class NaiveViT(nn.Module):
    def __init__(self, image=64, patch=8, d=8, depth=4, n_heads=4, classes=10) -> None:
        super().__init__()
        self.patch = patch
        n = (image // patch) ** 2
        self.linear_mapper = nn.Linear(3 * patch * patch, d)
        self.class_token = nn.Parameter(torch.rand(1, d))
        self.register_buffer("positional_embeddings", sincos_table(n + 1, d), persistent=False)
        self.blocks = nn.ModuleList(NaiveBlock(d, n_heads) for _ in range(depth))
        self.mlp = nn.Linear(d, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W)
        B, C, H, W = images.shape
        p = self.patch
        patches = images.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)
        tokens = self.linear_mapper(patches.reshape(B, (H // p) * (W // p), C * p * p))
        tokens = torch.cat([self.class_token.expand(B, 1, -1), tokens], dim=1)
        out = tokens + self.positional_embeddings
        for block in self.blocks:
            out = block(out)
        return self.mlp(out[:, 0])


def naive_epoch(model: nn.Module, opt: torch.optim.Optimizer, data, batch: int, seed: int) -> float:
    """One training epoch of the naive model (steps only); returns its seconds."""
    images, labels = data.train.images, data.train.labels
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    model.train()
    started = time.perf_counter()
    for step in range(math.ceil(len(images) / batch)):
        idx = order[step * batch : (step + 1) * batch]
        x = normalise_uint8(images[idx], (0.5,) * 3, (0.5,) * 3)
        loss = F.cross_entropy(model(x), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - started


# Side by side ---------------------------------------------------------------------------------
def ratio(data, epochs: int, device: str) -> None:
    naive = NaiveViT().to(device)
    naive_opt = torch.optim.Adam(naive.parameters(), lr=0.005)
    naive_seconds: list[float] = []
    ours_steps: list[float] = []
    ours_epoch: list[float] = []
    ours_cpu: list[float] = []  # CPU seconds of a whole epoch of ours (validation included)
    naive_cpu: list[float] = []
    mark = [time.perf_counter(), time.process_time()]

    def on_event(event) -> None:
        if isinstance(event, EpochEvent):
            ours_epoch.append(time.perf_counter() - mark[0])
            ours_cpu.append(time.process_time() - mark[1])
            ours_steps.append(event.metrics["seconds"])
            cpu = time.process_time()
            naive_seconds.append(naive_epoch(naive, naive_opt, data, 128, len(naive_seconds)))
            naive_cpu.append(time.process_time() - cpu)
            mark[:] = [time.perf_counter(), time.process_time()]

    naive_epoch(naive, naive_opt, data, 128, -1)  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        mark[:] = [time.perf_counter(), time.process_time()]
        train(
            preset("baseline"),
            TrainConfig(epochs=epochs + 1, device=device),
            data,
            tmp,
            callback=on_event,
        )
    # The first epoch of ours holds one-off costs (model build, kernel load): dropped.
    ours_steps, ours_epoch, naive_seconds = ours_steps[1:], ours_epoch[1:], naive_seconds[1:]
    ours_cpu, naive_cpu = ours_cpu[1:], naive_cpu[1:]
    med = statistics.median
    print(f"attention path: {fastattn.kernel_status()}")
    print(f"naive model, one epoch (training steps):   {med(naive_seconds):6.2f} s")
    print(f"ours, one epoch (training steps):          {med(ours_steps):6.2f} s")
    print(f"ours, one epoch with validation and files: {med(ours_epoch):6.2f} s")
    print(
        f"ratio ours/naive, training epoch: {med(ours_steps) / med(naive_seconds):.2f} "
        f"(goal <= 0.5); with validation and checkpoints: "
        f"{med(ours_epoch) / med(naive_seconds):.2f}"
    )
    if torch.get_num_threads() == 1:  # CPU time is what a quiet core would take
        print(
            f"from CPU time (insensitive to other processes): ours {med(ours_cpu):.2f} s "
            f"(whole epoch) / naive {med(naive_cpu):.2f} s = "
            f"{med(ours_cpu) / med(naive_cpu):.2f}"
        )


def _profile_steps(model: nn.Module, opt: torch.optim.Optimizer, data, clip: bool) -> None:
    images, labels = data.train.images, data.train.labels
    for step in range(10):
        idx = torch.arange(step * 128, (step + 1) * 128)
        x = normalise_uint8(images[idx], (0.5,) * 3, (0.5,) * 3)
        loss = F.cross_entropy(model(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        opt.step()


def profile(data) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    naive = NaiveViT()
    ours = VisionTransformer(preset("baseline"))
    ours_opt = make_optimizer(ours, TrainConfig())
    cases = [
        ("naive model", naive, torch.optim.Adam(naive.parameters(), lr=0.005), False, False),
        ("ours, SDPA (before)", ours, ours_opt, True, True),
        ("ours, compiled attention kernel (after)", ours, ours_opt, True, False),
    ]
    for title, model, opt, clip, sdpa in cases:
        model.train()
        with fastattn.disabled() if sdpa else contextlib.nullcontext():
            _profile_steps(model, opt, data, clip)  # warm-up
            with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                _profile_steps(model, opt, data, clip)
        print(f"\n=== profile, 10 training steps: {title} ===")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))


# The study estimate ---------------------------------------------------------------------------
_WORKER_START: list[tuple[float, float]] = []  # this worker's start-up (imports, data): wall, CPU


def _worker_start(spec: StudySpec) -> None:
    """What a study worker does once before its first run: one thread, rebuild the data."""
    wall, cpu = time.perf_counter(), time.process_time()
    torch.set_num_threads(1)
    _WORKER_START.append((0.0, 0.0))
    data = load_study_data(spec)
    _WORKER_START[0] = (time.perf_counter() - wall, time.process_time() - cpu)
    _WORKER_DATA.append(data)


_WORKER_DATA: list = []


def _preset_run(name: str, spec: StudySpec) -> dict[str, float]:
    """One run of the study exactly as ``ablate`` makes it (``_run_one``: model build, training
    with validation and checkpoints every epoch, the test-split evaluation with SMM), for
    ``spec.epochs`` (2) epochs. Returns the wall and CPU seconds of the whole run and of its
    last epoch. With one thread the CPU seconds are the wall seconds of a quiet core: they do
    not count the time this process waited for a core that others held."""
    marks: list[tuple[float, float]] = []

    def report(kind: str, *payload) -> None:
        if kind == "epoch":
            marks.append((time.perf_counter(), time.process_time()))

    with tempfile.TemporaryDirectory() as tmp:
        wall, cpu = time.perf_counter(), time.process_time()
        _run_one(spec, name, 0, Path(tmp), _WORKER_DATA[0], threading.Event(), report)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "run_wall": wall,
        "run_cpu": cpu,
        "epoch_wall": marks[-1][0] - marks[-2][0],
        "epoch_cpu": marks[-1][1] - marks[-2][1],
        "start_wall": _WORKER_START[0][0],
        "start_cpu": _WORKER_START[0][1],
    }


def _makespan(durations: list[float], workers: int, start: float) -> float:
    """When the last of ``durations`` ends, handed out in order to ``workers`` processes that
    each take the next run when free (ProcessPoolExecutor), each after ``start`` seconds."""
    free = [start] * workers
    for d in durations:
        i = min(range(workers), key=free.__getitem__)
        free[i] += d
    return max(free)


def study(device: str, epochs: int = 50) -> None:
    """The 14-model study, one seed, ``ablate --jobs 2 --threads 1``, estimated honestly: each
    run is measured whole for 2 epochs (build, training, validation, checkpoints, test
    evaluation), its 48 further epochs are the second epoch's time, the runs are scheduled in
    the study's order on 2 workers, and each worker's start-up (imports, data) is added."""
    spec = StudySpec(epochs=2, device=device, threads=1)
    with ProcessPoolExecutor(2, initializer=_worker_start, initargs=(spec,)) as pool:
        runs = dict(
            zip(PRESETS, pool.map(_preset_run, PRESETS, [spec] * len(PRESETS)), strict=True)
        )
    extra = epochs - spec.epochs
    for name, r in runs.items():
        print(
            f"  {name:12s} epoch {r['epoch_wall']:5.2f} s wall, {r['epoch_cpu']:5.2f} s CPU; "
            f"run of {spec.epochs} epochs + test evaluation {r['run_wall']:5.1f} s wall, "
            f"{r['run_cpu']:5.1f} s CPU"
        )
    est: dict[str, float] = {}
    for kind in ("wall", "cpu"):
        durations = [r[f"run_{kind}"] + extra * r[f"epoch_{kind}"] for r in runs.values()]
        start = max(r[f"start_{kind}"] for r in runs.values())
        est[kind] = _makespan(durations, 2, start) / 60
        est[kind + "_naive"] = sum(r[f"epoch_{kind}"] for r in runs.values()) * epochs / 2 / 60
    print(f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(
        f"estimated 14-model study, one seed, {epochs} epochs, 2 processes x 1 thread, with "
        f"model builds, test evaluation, worker start-up and the 2-worker schedule: "
        f"{est['wall']:.1f} min wall here, {est['cpu']:.1f} min from CPU time (a quiet "
        f"2-core machine) (goal <= 15 min)"
    )
    print(
        f"  (epochs only, sum / 2, as estimated before: {est['wall_naive']:.1f} min wall, "
        f"{est['cpu_naive']:.1f} min CPU)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs for the ratio")
    parser.add_argument("--profile", action="store_true")
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
    t = time.perf_counter()
    data = make_synthetic(seed=0)
    print(
        f"synthetic dataset ({len(data.train)}/{len(data.val)}/{len(data.test)} images) "
        f"generated in {time.perf_counter() - t:.1f} s; torch threads {torch.get_num_threads()}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    ratio(data, args.epochs, args.device)
    if args.profile:
        profile(data)
    if args.study:
        study(args.device)


if __name__ == "__main__":
    main()
