"""GUI latency, offscreen: slider change -> repainted overlay, and the head/layer grid render.

Usage::

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_latency.py [--repeats 60]

For a ViT-B-sized random model (224 px, 16 px patches, 12 layers x 12 heads, 197 tokens) and
the paper's baseline (64 px, 8 px patches, 4 x 4, 65 tokens) it prints:

* the time from setting the discard slider to the overlay being repainted on screen (the
  window's zero-ms timer fires, the map is computed from the cached capture, blended, and the
  view's viewport is repainted synchronously), median and p95, for several methods;
* the 12 x 12 grid: computing the explorer's maps, and drawing them (mosaic + repaint).

Goals (issue 5): median <= 16 ms and p95 <= 33 ms for the slider on ViT-B; grid <= 100 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from inspector.core.checkpoint import Checkpoint  # noqa: E402
from inspector.core.config import Preprocess, ViTConfig, preset  # noqa: E402
from inspector.core.explain import explorer_maps, from_checkpoint  # noqa: E402
from inspector.core.model import VisionTransformer  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _wait_frame(app: QApplication, window, count: int, painted: int,
                timeout: float = 30.0) -> None:
    """Process events until the new overlay was computed *and* the view painted a frame."""
    deadline = time.monotonic() + timeout
    view = window.image_view
    while window.render_count == count or view.viewport_paints == painted:
        app.processEvents()
        if time.monotonic() > deadline:
            raise TimeoutError("no redraw")


def _count_viewport_paints(view) -> None:
    """Count the frames the view's viewport paints (an event filter, no change to the view)."""
    from PySide6.QtCore import QEvent, QObject

    class Counter(QObject):
        def eventFilter(self, obj, event):  # noqa: N802 - Qt override
            if event.type() == QEvent.Type.Paint:
                view.viewport_paints += 1
            return False

    view.viewport_paints = 0
    view._paint_counter = Counter()
    view.viewport().installEventFilter(view._paint_counter)


def bench_model(app: QApplication, cfg: ViTConfig, label: str, repeats: int,
                image_path: Path) -> None:
    from inspector.gui.main_window import MainWindow

    torch.manual_seed(0)
    model = VisionTransformer(cfg).eval()
    ckpt = Checkpoint.from_model(model, class_names=[f"c{i}" for i in range(cfg.num_classes)],
                                 preprocess=Preprocess(image_size=cfg.image_size))
    settings = QSettings(str(image_path.parent / f"{label}.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    window.resize(1280, 800)
    window.show()
    window.use_model(from_checkpoint(ckpt))
    t0 = time.perf_counter()
    window.open_image(image_path)
    assert window.wait_until_idle(120_000), "capture did not finish"
    _count_viewport_paints(window.image_view)
    print(f"\n{label}: {cfg.depth} layers x {cfg.num_heads} heads, {cfg.num_tokens} tokens; "
          f"open + capture {1000 * (time.perf_counter() - t0):.0f} ms")
    slider = window.controls.discard
    view = window.image_view
    for method, fusion in (("rollout", "max"), ("rollout", "mean"), ("attention", "mean"),
                           ("cls-attention", "mean"), ("grad-rollout", "mean")):
        window.controls.set_method(method)
        window.controls.fusion.setCurrentText(fusion)
        assert window.wait_until_idle(120_000)
        times = []
        for i in range(repeats):
            count, painted = window.render_count, view.viewport_paints
            t = time.perf_counter()
            slider.setValue(10 + (i * 7) % 89)  # 0.10 .. 0.98, never the same twice in a row
            _wait_frame(app, window, count, painted)
            times.append(1000 * (time.perf_counter() - t))
        print(f"  slider -> repainted overlay  {method:14s} {fusion:4s}: median "
              f"{statistics.median(times):6.2f} ms, p95 {percentile(times, 95):6.2f} ms "
              f"(n={len(times)})")
    # The head/layer grid: compute + draw, for a few queries.
    cap = window.capture
    compute, draw = [], []
    for q in range(0, min(cap.num_tokens, 40), 4):
        t = time.perf_counter()
        data = explorer_maps(cap, query=q, fusion="mean", discard_ratio=0.9)
        t1 = time.perf_counter()
        window.explorer.set_data(data, colormap="viridis")
        window.explorer.plot_widget.viewport().repaint()
        t2 = time.perf_counter()
        compute.append(1000 * (t1 - t))
        draw.append(1000 * (t2 - t1))
    total = [a + b for a, b in zip(compute, draw, strict=True)]
    print(f"  grid {cap.num_layers}x{cap.num_heads} (+fused, rollout): compute median "
          f"{statistics.median(compute):.1f} ms, draw median {statistics.median(draw):.1f} ms, "
          f"total median {statistics.median(total):.1f} ms, max {max(total):.1f} ms")
    window.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=60)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"cpus {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        from PIL import Image

        rng = np.random.default_rng(0)
        path = Path(tmp) / "img.png"
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(path)
        vit_b = ViTConfig(image_size=224, patch_size=16, hidden_size=768, depth=12, num_heads=12,
                          num_classes=1000, attn_out_proj=True, final_norm=True)
        bench_model(app, vit_b, "ViT-B/16", args.repeats, path)
        bench_model(app, preset("baseline"), "paper baseline", args.repeats, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
