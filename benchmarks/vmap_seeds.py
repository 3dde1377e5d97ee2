"""Would training same-shape models together (the seeds of one preset) with ``torch.func`` pay?

    python benchmarks/vmap_seeds.py [--models 3] [--steps 10]

One training step's forward and backward of the paper's baseline (batch 128), in CPU
milliseconds per model and step on one thread, for ``--models`` models:

- separately, each its own step (what ``train()`` does), with the compiled attention kernel;
- separately and together (``vmap(grad(loss))`` over ``stack_module_state``, through
  ``functional_call``) on PyTorch's SDPA, since the kernel's autograd function has no vmap rule;
- the same two with attention left out (the q/k/v projection kept), to see whether the rest of
  the step (linears, LayerNorm, GELU, patch embedding) gains from being stacked, i.e. what a
  vmap rule for the kernel could at best bring.

Measured by this script on the shared 2-core machine (2026-12-03, 3 models): with the kernel
40.1 ms separately; on SDPA 71.9 ms separately, 99.3 ms with vmap; without attention 20.1 ms
separately, 24.1 ms with vmap (a first prototype run: 41.6; 82.0 / 87.8; 16.8 / 20.5).
Stacking makes each model's step slower, not faster, so the
study keeps training its runs one by one (ablate --jobs for parallelism).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, stack_module_state, vmap

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inspector.core import fastattn  # noqa: E402
from inspector.core import model as model_module  # noqa: E402
from inspector.core.config import preset  # noqa: E402
from inspector.core.malloc import keep_freed_memory  # noqa: E402


def _measure(n_models: int, steps: int) -> dict[str, float]:
    models = [model_module.VisionTransformer(preset("baseline")) for _ in range(n_models)]
    x, y = torch.randn(128, 3, 64, 64), torch.randint(0, 10, (128,))  # (B, 3, 64, 64), (B,)

    def separate() -> None:
        for m in models:
            m.zero_grad()
            F.cross_entropy(m(x), y).backward()

    params, buffers = stack_module_state(models)  # each (n_models, *shape)
    base = copy.deepcopy(models[0]).to("meta")

    def loss(p, b):
        return F.cross_entropy(functional_call(base, (p, b), (x,)), y)

    together_grad = vmap(grad(loss))

    def together() -> None:
        together_grad(params, buffers)

    def per_model_ms(fn) -> float:
        fn()  # warm-up
        cpu = time.process_time()
        for _ in range(steps):
            fn()
        return (time.process_time() - cpu) / steps / n_models * 1e3

    out = {"separate, kernel": per_model_ms(separate)}
    with fastattn.disabled():
        out["separate, SDPA"] = per_model_ms(separate)
        out["together (vmap), SDPA"] = per_model_ms(together)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    if args.models < 1 or args.steps < 1:
        parser.error("--models and --steps must be >= 1")
    torch.set_num_threads(1)
    keep_freed_memory()  # as train() does
    for name, ms in _measure(args.models, args.steps).items():
        print(f"{args.models} baseline models, {name:24s} {ms:6.1f} ms CPU per model-step")
    # Attention left out (its q/k/v projection kept): does the rest of the step stack well?
    original = model_module.Attention.forward
    model_module.Attention.forward = lambda self, x: self.qkv(x)[..., : x.shape[-1]]
    try:
        got = _measure(args.models, args.steps)
    finally:
        model_module.Attention.forward = original
    for name in ("separate, SDPA", "together (vmap), SDPA"):
        label = name.replace(", SDPA", ", no attention")
        print(f"{args.models} baseline models, {label:24s} {got[name]:6.1f} ms CPU per model-step")


if __name__ == "__main__":
    main()
