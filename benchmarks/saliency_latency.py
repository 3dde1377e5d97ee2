"""How long does a saliency map take when the capture is cached, versus re-running the model?

Run: ``python benchmarks/saliency_latency.py [--repeats 50] [--forward-repeats 10] [--skip-vitb]``

For a ViT-B/16-sized model (random weights, 86M parameters: 12 layers, 12 heads, 197 tokens) and
for the paper's baseline (4 layers, 4 heads, 65 tokens) it prints median and p95 milliseconds of

* ``cached``: ``compute_map(capture, "rollout", discard 0.9)`` on a capture whose head-fused
  matrices (and their sorted entries) are already memoised (what happens while the user drags
  the discard slider); also at every discard ratio from 0.10 to 0.98 in turn, as the GUI
  benchmark moves the slider;
* ``from attention``: ``rollout(attention, ...)`` straight from the raw ``[L, h, T, T]``
  attention (head fusion included: what a fusion change costs once);
* ``forward + rollout``: re-running the model with attention and then rollout, every time (what
  jacobgil/vit-explain does), and the ratio of that to ``cached``.

Each line also gives the process CPU time: on a shared, loaded machine the wall clock includes
waiting for a core, while the CPU time of the (single-threaded numpy) map path approximates what
an idle machine would show. The forward pass uses all torch threads, so its CPU time is the sum
over threads. Nothing is downloaded; the weights are random (timing does not depend on them).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from inspector.core.capture import ViTAdapter, capture  # noqa: E402
from inspector.core.config import ViTConfig  # noqa: E402
from inspector.core.model import VisionTransformer  # noqa: E402
from inspector.core.saliency import MapSettings, compute_map, rollout  # noqa: E402

VIT_B = ViTConfig(
    image_size=224,
    patch_size=16,
    hidden_size=768,
    depth=12,
    num_heads=12,
    attn_out_proj=True,
    final_norm=True,
    layer_norm_eps=1e-6,
    num_classes=1000,
)
PAPER = ViTConfig()  # the paper's baseline: 64x64, P=8, 4 blocks, 4 heads, d=8


class Timings:
    """Wall-clock and process CPU milliseconds of repeated calls."""

    def __init__(self, fn: Callable[[], object], repeats: int, warmup: int = 2) -> None:
        for _ in range(warmup):
            fn()
        self.wall: list[float] = []
        self.cpu: list[float] = []
        for _ in range(repeats):
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            self.wall.append((time.perf_counter() - t0) * 1e3)
            self.cpu.append((time.process_time() - c0) * 1e3)


def summary(ts: list[float]) -> tuple[float, float]:
    return statistics.median(ts), float(np.percentile(ts, 95))


def bench(name: str, cfg: ViTConfig, repeats: int, forward_repeats: int) -> None:
    torch.manual_seed(0)
    model = VisionTransformer(cfg).eval()
    n_params = sum(p.numel() for p in model.parameters())
    x = torch.randn(1, 3, cfg.image_size, cfg.image_size)
    settings = MapSettings(method="rollout", fusion="max", discard_ratio=0.9)

    t0 = time.perf_counter()
    cap = capture(ViTAdapter(model), x)
    capture_ms = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    compute_map(cap, settings=settings)  # first call fuses the heads and memoises them
    first_ms = (time.perf_counter() - t0) * 1e3

    cached = Timings(lambda: compute_map(cap, settings=settings), repeats)
    ratios = iter([0.10 + ((i * 7) % 89) / 100 for i in range(10 * repeats)])
    sweep = Timings(
        lambda: compute_map(cap, settings=settings.replace(discard_ratio=next(ratios))), repeats
    )
    raw = Timings(
        lambda: rollout(cap.attentions, fusion="max", discard_ratio=0.9), max(5, repeats // 5)
    )

    def forward_and_rollout() -> None:
        with torch.no_grad():
            out = model.forward_with_attention(x)
        attn = torch.stack([a[0] for a in out.attentions])
        rollout(attn, fusion="max", discard_ratio=0.9)

    full = Timings(forward_and_rollout, forward_repeats, warmup=1)

    L, h, T = cap.num_layers, cap.num_heads, cap.num_tokens
    print(f"\n{name}: {n_params / 1e6:.1f}M parameters, attention [{L}, {h}, {T}, {T}]")
    print(f"  capture (one forward with attention): {capture_ms:8.2f} ms")
    print(f"  first map (fuses, sorts, memoises)   : {first_ms:8.2f} ms")
    for label, ts in (
        ("cached rollout, discard 0.9", cached),
        ("cached rollout, discard 0.1..0.98", sweep),
        ("rollout from raw attention", raw),
        ("forward + rollout (vit-explain)", full),
    ):
        med, p95 = summary(ts.wall)
        cpu_med, _ = summary(ts.cpu)
        print(
            f"  {label:32s} median {med:8.3f} ms  p95 {p95:8.3f} ms  "
            f"(CPU time median {cpu_med:8.3f} ms, n={len(ts.wall)})"
        )
    ratio = statistics.median(full.wall) / statistics.median(cached.wall)
    cpu_ratio = statistics.median(full.cpu) / statistics.median(cached.cpu)
    print(
        f"  speed-up of the cached path over forward + rollout: {ratio:.0f}x wall, "
        f"{cpu_ratio:.0f}x CPU time"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50, help="timed map recomputations")
    parser.add_argument(
        "--forward-repeats", type=int, default=10, help="timed forward + rollout runs"
    )
    parser.add_argument("--skip-vitb", action="store_true", help="only the paper's model")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if not args.skip_vitb:
        bench("ViT-B/16 (random weights)", VIT_B, args.repeats, args.forward_repeats)
    bench("paper baseline", PAPER, args.repeats, args.forward_repeats)


if __name__ == "__main__":
    main()
