"""Open a DINOv2 ViT-B/14 file at 224 px and compute its first rollout; print the times.

Goal (issue 12): at most 1.5 s from file to first map on a 2-core CPU. The file is made here
from random weights (timm, no download) and saved as a plain state dict, as users save one.

    PYTHONPATH=. python benchmarks/load_latency.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    import timm

    from inspector.core.capture import capture
    from inspector.core.explain import open_model
    from inspector.core.saliency._readout import readout_map

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "dinov2_vitb14.pth"
        model = timm.create_model("vit_base_patch14_dinov2", pretrained=False)
        torch.save(model.state_dict(), path)
        for run in range(2):
            t0 = time.perf_counter()
            loaded = open_model(path)  # inferred: vit_small_patch14_dinov2 template, ViT-B sizes
            t1 = time.perf_counter()
            x = torch.randn(1, 3, 224, 224)
            cap = capture(loaded.model, x)
            t2 = time.perf_counter()
            readout_map(cap, "rollout", discard_ratio=0.9)
            t3 = time.perf_counter()
            print(
                f"run {run}: open {t1 - t0:.2f} s, capture {t2 - t1:.2f} s, "
                f"first rollout {t3 - t2:.3f} s, total {t3 - t0:.2f} s "
                f"({loaded.checkpoint.config.arch}, grid {cap.grid_size})"
            )


if __name__ == "__main__":
    main()
