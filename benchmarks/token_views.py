"""Cost of the artefact views on a ViT-B/14 with 4 registers (DINOv2-reg layout, random timm
weights, 224 px: 16 x 16 patches + class + 4 registers = 261 tokens, 12 layers x 12 heads).

Usage::

    python benchmarks/token_views.py [--repeats 20]

Prints, median over the repeats, for one cached capture: the ``token-norm`` map of one layer
(``compute_map``), the outlier report (``capture_outliers``) and the registers' attention of
one layer (``register_attention``) -- what the window recomputes when the layer control
moves -- and, once, the capture itself with the block-output norms recorded.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    import timm

    from inspector.core.capture import capture
    from inspector.core.library.timm_vit import TimmViTAdapter
    from inspector.core.registers import register_attention
    from inspector.core.saliency import MapSettings, compute_map
    from inspector.core.saliency.token_norm import capture_outliers

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = timm.create_model("vit_base_patch14_reg4_dinov2", pretrained=False, img_size=224)
    adapter = TimmViTAdapter(model, patch_size=14, image_size=224)
    x = torch.randn(1, 3, 224, 224)
    for run in ("first", "second"):  # the first call includes one-off start-up costs
        t0 = time.perf_counter()
        cap = capture(adapter, x)
        ms = (time.perf_counter() - t0) * 1000
        print(f"capture (ViT-B/14 reg4, 261 tokens, with token norms), {run} call: {ms:.0f} ms")
    layers = iter(range(10**9))
    s = MapSettings(method="token-norm")
    tn = _median_ms(
        lambda: compute_map(cap, settings=s.replace(layer=next(layers) % 12)), args.repeats
    )
    out = _median_ms(lambda: capture_outliers(cap, layer=next(layers) % 12), args.repeats)
    reg = _median_ms(lambda: register_attention(cap, layer=next(layers) % 12), args.repeats)
    print(f"token-norm map, one layer: {tn:.2f} ms (median of {args.repeats})")
    print(f"outlier report, one layer: {out:.2f} ms")
    print(f"register attention, one layer (12 heads averaged): {reg:.2f} ms")


if __name__ == "__main__":
    main()
