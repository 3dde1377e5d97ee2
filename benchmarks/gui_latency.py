"""GUI latency, offscreen: slider change -> repainted overlay, and the head/layer grid render.

Usage::

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_latency.py [--repeats 60]

For a ViT-B-sized random model (224 px, 16 px patches, 12 layers x 12 heads, 197 tokens) and
the paper's baseline (64 px, 8 px patches, 4 x 4, 65 tokens) it prints:

* the time from setting the discard slider to the overlay being repainted on screen (the
  window's zero-ms timer fires, the map is computed from the cached capture, blended, and the
  view's viewport is repainted synchronously), median and p95, for several methods, and for
  rollout again with an object mask and the masks panel showing (SMM on every move); with
  the process CPU time beside the wall time (on a loaded machine the wall time includes
  waiting for a core);
* of that time, how much the map itself took (saliency + overlay, measured inside the window's
  redraw) and the GUI's own overhead (labels, layout, event dispatch, painting);
* the 12 x 12 grid: computing the explorer's maps, and drawing them (mosaic + repaint);
* the event loop's longest stall while a short synthetic training job, started from the
  training panel, runs in its child process (``vit-inspector train --events json``, read by a
  ``QProcess``), for the first and the second job of the window: a 5 ms ``QTimer`` records
  the gaps between its ticks (a gap of 5 ms means no stall). ``--only-training`` skips the
  slider and grid figures.

Goals (issue 5): median <= 16 ms and p95 <= 33 ms for the slider on ViT-B; grid <= 100 ms;
(issue 11) longest stall during the first and the second training job <= 50 ms; start-up at
most 1.5x ``import torch, PySide6.QtWidgets`` and peak memory <= 500 MiB (the last section,
from ``benchmarks/startup.py``; ``--startup-repeats 0`` skips it).
"""

from __future__ import annotations

import argparse
import gc
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
from PySide6.QtCore import QSettings, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from inspector.core.checkpoint import Checkpoint  # noqa: E402
from inspector.core.config import Preprocess, ViTConfig, preset  # noqa: E402
from inspector.core.explain import explorer_maps, from_checkpoint  # noqa: E402
from inspector.core.model import VisionTransformer  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _wait_frame(app: QApplication, window, count: int, painted: int, timeout: float = 30.0) -> None:
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


def bench_model(
    app: QApplication, cfg: ViTConfig, label: str, repeats: int, image_path: Path
) -> None:
    from inspector.gui.main_window import MainWindow

    torch.manual_seed(0)
    model = VisionTransformer(cfg).eval()
    ckpt = Checkpoint.from_model(
        model,
        class_names=[f"c{i}" for i in range(cfg.num_classes)],
        preprocess=Preprocess(image_size=cfg.image_size),
    )
    settings = QSettings(str(image_path.parent / f"{label}.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    window.resize(1280, 800)
    window.show()
    window.use_model(from_checkpoint(ckpt))
    t0 = time.perf_counter()
    window.open_image(image_path)
    assert window.wait_until_idle(120_000), "capture did not finish"
    _count_viewport_paints(window.image_view)
    print(
        f"\n{label}: {cfg.depth} layers x {cfg.num_heads} heads, {cfg.num_tokens} tokens; "
        f"open + capture {1000 * (time.perf_counter() - t0):.0f} ms"
    )
    slider = window.controls.discard
    view = window.image_view
    masks_dock = window.extra_docks.get("masks")
    for method, fusion, with_mask in (
        ("rollout", "max", False),
        ("rollout", "mean", False),
        ("attention", "mean", False),
        ("cls-attention", "mean", False),
        ("grad-rollout", "mean", False),
        ("rollout", "max", True),
    ):
        if with_mask:
            # An object mask and the masks panel on top: SMM in the status bar on every move,
            # the panel's metrics as well.
            h, w = window.image.original.shape[:2]
            mask = np.zeros((h, w), dtype=bool)
            mask[h // 4 : 3 * h // 4, w // 5 : 3 * w // 5] = True
            assert window.set_mask_array(mask)
            if masks_dock is not None:
                masks_dock.raise_()
        window.controls.set_method(method)
        window.controls.fusion.setCurrentText(fusion)
        assert window.wait_until_idle(120_000)
        times, maps, cpus, map_cpus = [], [], [], []
        for i in range(repeats):
            count, painted = window.render_count, view.viewport_paints
            t, c = time.perf_counter(), time.process_time()
            slider.setValue(10 + (i * 7) % 89)  # 0.10 .. 0.98, never the same twice in a row
            _wait_frame(app, window, count, painted)
            times.append(1000 * (time.perf_counter() - t))
            cpus.append(1000 * (time.process_time() - c))
            maps.append(window.last_render.elapsed_ms)
            map_cpus.append(getattr(window.last_render, "cpu_ms", float("nan")))
        overhead = [a - b for a, b in zip(times, maps, strict=True)]
        label_ = f"{method} {fusion}" + (" + mask" if with_mask else "")
        print(
            f"  slider -> repainted overlay  {label_:26s}: median "
            f"{statistics.median(times):6.2f} ms, p95 {percentile(times, 95):6.2f} ms "
            f"(n={len(times)}); map {statistics.median(maps):5.2f} ms, GUI overhead "
            f"{statistics.median(overhead):5.2f} ms"
        )
        print(
            f"  {'':29s}{'(CPU time)':26s}: median {statistics.median(cpus):6.2f} ms, p95 "
            f"{percentile(cpus, 95):6.2f} ms; map {statistics.median(map_cpus):5.2f} ms"
        )
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
    print(
        f"  grid {cap.num_layers}x{cap.num_heads} (+fused, rollout): compute median "
        f"{statistics.median(compute):.1f} ms, draw median {statistics.median(draw):.1f} ms, "
        f"total median {statistics.median(total):.1f} ms, max {max(total):.1f} ms"
    )
    window.close()


def _gap_recorder():
    """A 5 ms precise timer, the wall-clock gaps (ms) between its ticks and, per gap, the CPU
    time the GUI thread itself spent in it (``busy``): a long gap with little busy time is the
    thread waiting for a core (other programs), not work of the window's."""
    from PySide6.QtCore import QTimer

    gaps: list[float] = []
    busy: list[float] = []
    last = [time.perf_counter()]
    last_cpu = [time.thread_time()]

    def tick() -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        gaps.append(1000 * (now - last[0]))
        busy.append(1000 * (cpu - last_cpu[0]))
        last[0], last_cpu[0] = now, cpu

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(5)
    timer.timeout.connect(tick)
    return timer, gaps, busy, last, last_cpu


def _gap_summary(gaps: list[float], busy: list[float]) -> str:
    worst = int(np.argmax(gaps))
    return (
        f"median {statistics.median(gaps):.1f} ms, p99 {percentile(gaps, 99):.1f} ms, "
        f"longest {gaps[worst]:.1f} ms (GUI thread busy {busy[worst]:.1f} ms of it; the "
        f"longest busy gap {max(busy):.1f} ms; n={len(gaps)})"
    )


def bench_idle_stall(app: QApplication, workdir: Path, seconds: float) -> None:
    """The same measurement on an idle window with no job: this machine's own noise (other
    programs on the same cores), to read the training figures against."""
    from PySide6.QtCore import QEventLoop, QTimer

    from inspector.gui.main_window import MainWindow

    settings = QSettings(str(workdir / "idle.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    window.resize(1280, 800)
    window.show()
    window.extra_docks["training"].raise_()
    app.processEvents()
    timer, gaps, busy, last, last_cpu = _gap_recorder()
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    timer.start()
    last[0], last_cpu[0] = time.perf_counter(), time.thread_time()
    loop.exec()
    timer.stop()
    print(
        f"\nidle window, no job ({seconds:.0f} s, the machine's own noise): "
        f"{_gap_summary(gaps, busy)}"
    )
    window.close()


def bench_training_stall(app: QApplication, workdir: Path, epochs: int, label: str) -> float:
    """The event loop's longest stall while the training panel's job runs.

    The job is a child process: its imports (torch, the optimiser's lazy imports, scikit-learn
    for the metrics), data loading and training never hold this process's GIL. The first job
    also pays this process's first use of the panel's job code (QProcess start, the run folder
    check), so the first and a later job are measured separately.
    """
    from PySide6.QtCore import QEventLoop

    from inspector.gui.main_window import MainWindow

    settings = QSettings(str(workdir / "train.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    window.resize(1280, 800)
    window.show()
    panel = window.panels["training"]
    window.extra_docks["training"].raise_()  # the curves are visible and repainting
    panel.set_dataset("synthetic")
    panel.classes_spin.setValue(5)
    panel.train_per_class_spin.setValue(40)
    panel.val_per_class_spin.setValue(8)
    panel.epochs_spin.setValue(epochs)
    panel.batch_spin.setValue(16)
    panel.device_combo.setCurrentText("cpu")
    panel.set_output_dir(workdir / f"run-{label.split()[0]}")
    app.processEvents()
    # As the app does once its first map is painted (app.settle_garbage_collector): one
    # collection, then what exists now is frozen, so the GUI thread's collector timer
    # (gc_guard) no longer walks this process's ~1M objects (torch, two ViT-B windows).
    gc.collect()
    gc.freeze()
    timer, gaps, busy, last, last_cpu = _gap_recorder()
    loop = QEventLoop()
    ended: list[str] = []
    panel.job_ended.connect(lambda status, _m: (ended.append(status), loop.quit()))
    t0 = time.perf_counter()
    timer.start()
    last[0], last_cpu[0] = time.perf_counter(), time.thread_time()
    assert panel.start(), panel.error_label.text()  # its own time counts in the first gap
    loop.exec()
    timer.stop()
    wall = time.perf_counter() - t0
    steps = panel.curves.step_count()
    epochs_seen = len(panel.history())
    print(
        f"\ntraining from the panel in a child process, {label} ({epochs} epochs, "
        f"{epochs_seen} epoch events, {steps} step updates, {wall:.1f} s, "
        f"{ended[0] if ended else '?'}): event loop gaps with a 5 ms timer: "
        f"{_gap_summary(gaps, busy)}; goal: longest <= 50 ms"
    )
    window.close()
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--train-epochs", type=int, default=3)
    parser.add_argument(
        "--only-training", action="store_true", help="only the training-stall figures"
    )
    parser.add_argument(
        "--startup-repeats",
        type=int,
        default=3,
        help="start-up and peak memory against the reference (benchmarks/startup.py); 0 skips",
    )
    args = parser.parse_args()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpus {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        from PIL import Image

        rng = np.random.default_rng(0)
        path = Path(tmp) / "img.png"
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(path)
        vit_b = ViTConfig(
            image_size=224,
            patch_size=16,
            hidden_size=768,
            depth=12,
            num_heads=12,
            num_classes=1000,
            attn_out_proj=True,
            final_norm=True,
        )
        if not args.only_training:
            bench_model(app, vit_b, "ViT-B/16", args.repeats, path)
            bench_model(app, preset("baseline"), "paper baseline", args.repeats, path)
        wall = bench_training_stall(app, Path(tmp), args.train_epochs, "first job")
        bench_training_stall(app, Path(tmp), args.train_epochs, "second job")
        bench_idle_stall(app, Path(tmp), wall)
    if args.startup_repeats > 0:
        # Start-up wall time against `import torch, PySide6.QtWidgets` and the peak memory of
        # each, in child processes side by side (benchmarks/startup.py). Run from a fresh,
        # small process: Linux carries the RSS high-water mark of the process that forks into
        # the child's ru_maxrss, so children of this 1.6 GB process would all report 1.6 GB.
        import subprocess

        print("start-up (python main.py to the first painted map) and peak memory:", flush=True)
        script = Path(__file__).resolve().parent / "startup.py"
        subprocess.run(
            [sys.executable, str(script), "--repeats", str(args.startup_repeats)], check=False
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
