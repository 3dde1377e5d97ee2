"""Application start-up: arguments, the QApplication, the main window, ``--screenshot``."""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from inspector.gui import gc_guard
from inspector.paths import (  # noqa: F401 - re-exported for tests and scripts
    DEFAULT_CHECKPOINT,
    REPO_ROOT,
    SAMPLES,
    STUDY_CHECKPOINTS,
    default_image,
    study_checkpoints,
)

_START = time.monotonic()  # as early as this module is imported (main.py's first import)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="main.py", description="ViT Inspector desktop app")
    parser.add_argument("images", nargs="*", type=Path, help="images to open")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help=f"checkpoint to open (default: {DEFAULT_CHECKPOINT.name})",
    )
    parser.add_argument(
        "--first-map",
        action="store_true",
        help="exit once the first map is painted and print the seconds since start "
        "(benchmarks/gui_latency.py)",
    )
    parser.add_argument(
        "--screenshot",
        type=Path,
        default=None,
        help="render the window offscreen to this PNG and exit",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, hold_gc: bool = False) -> int:
    """Run the app. ``hold_gc`` (main.py, which turned the cyclic collector off before its
    imports): no collection until the first map is painted (``settle_garbage_collector``)."""
    if hold_gc:
        gc_guard.set_wanted(False)
    try:
        return _run(parse_args(argv), hold_gc)
    finally:
        if hold_gc:
            gc_guard.set_wanted(True)  # --first-map, --screenshot: nothing settled it


def _run(args: argparse.Namespace, hold_gc: bool) -> int:
    if args.screenshot is not None:
        # Must be set before the QApplication exists.
        os.environ["QT_QPA_PLATFORM"] = "offscreen"

    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication, QLabel

    app = QApplication.instance() or QApplication(sys.argv[:1])
    gc_guard.install()  # collections only from a GUI-thread timer (never off-thread)
    app.setApplicationName("ViT Inspector")
    app.setOrganizationName("ViT Inspector")
    # Something is on screen at once: torch and the window's modules take seconds to import.
    # A plain label window, not QSplashScreen: its show() waits up to a second for the
    # window to be exposed (measured: 1.02 s under xcb and offscreen), which is most of what
    # a splash is meant to hide.
    splash = None
    if args.screenshot is None:
        splash = QLabel("ViT Inspector\nloading PyTorch and the model…")
        splash.setWindowFlags(Qt.WindowType.SplashScreen | Qt.WindowType.FramelessWindowHint)
        splash.setAlignment(Qt.AlignmentFlag.AlignCenter)
        splash.setStyleSheet("background: #202124; color: #dcdcdc; font-size: 14px;")
        splash.resize(420, 120)
        splash.show()
        app.processEvents()

    from .main_window import MainWindow

    window = MainWindow()
    if args.screenshot is not None:
        window.resize(1280, 800)
    elif not window.restored_geometry:
        # First start: the screen's available area. A fixed 1280x800 overflowed 720-line
        # screens (status bar below the fold) and left most of a 1080p screen empty.
        window.setGeometry(QApplication.primaryScreen().availableGeometry())
    checkpoint = args.checkpoint or (DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.exists() else None)
    images = list(args.images) or ([default_image()] if default_image() else [])
    if checkpoint is not None:
        window.open_checkpoint(checkpoint)
    for image in images[:1]:
        window.open_image(image)
    window.show()
    if splash is not None:
        splash.close()
    if args.first_map:
        return _exit_after_first_map(app, window)
    if hold_gc:
        settle_garbage_collector(window)

    if args.screenshot is not None:
        idle = window.wait_until_idle(timeout_ms=60_000)
        pixmap = window.grab()
        window.close()  # stops the worker thread cleanly
        if not idle:
            print(
                "main.py: warning: still busy after 60 s; screenshot taken anyway", file=sys.stderr
            )
        try:
            args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"main.py: error: cannot create {args.screenshot.parent}: {exc}", file=sys.stderr)
            return 1
        if not pixmap.save(str(args.screenshot), "PNG"):
            print(f"main.py: error: could not write {args.screenshot}", file=sys.stderr)
            return 1
        print(f"wrote {args.screenshot}")
        return 0
    return app.exec()


def settle_garbage_collector(window, fallback_ms: int = 10_000) -> None:
    """Turn the cyclic collector back on once the first map is painted (main.py starts with it
    off), after one full collection and ``gc.freeze()``: start-up's objects (torch's ~360k)
    move to the permanent generation, so later full collections, which would each walk them
    for ~70-100 ms and stall the event loop, skip them. Also done on the first error shown,
    or after ``fallback_ms`` when no map comes (no checkpoint or no image)."""
    from PySide6.QtCore import QTimer

    done = [False]

    def settle(*_: object) -> None:
        if done[0]:
            return
        done[0] = True
        gc.collect()  # start-up's own cyclic garbage, so that freeze() keeps none of it
        gc.freeze()
        gc_guard.set_wanted(True)  # the GUI thread's timer collects from now on

    # A delay, not 0 ms: the overlay's paint event, posted with it, goes first.
    window.overlayUpdated.connect(lambda: QTimer.singleShot(100, settle))
    window.errorShown.connect(lambda _: QTimer.singleShot(100, settle))
    QTimer.singleShot(fallback_ms, settle)


def _exit_after_first_map(app, window) -> int:
    """Wait for the first painted map, print the seconds since the interpreter started."""
    from PySide6.QtCore import QEvent, QObject

    painted = [0]

    class PaintCounter(QObject):
        def eventFilter(self, obj, event):  # noqa: N802 - Qt override
            if event.type() == QEvent.Type.Paint and window.last_render is not None:
                painted[0] += window.last_render.full is not None
            return False

    counter = PaintCounter()
    window.image_view.viewport().installEventFilter(counter)
    deadline = time.monotonic() + 120
    while not painted[0] and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.002)
    elapsed = time.monotonic() - _START
    window.close()
    if not painted[0]:
        print("main.py: error: no map painted within 120 s", file=sys.stderr)
        return 1
    import resource  # the peak so far: before Python's own teardown at exit

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"first map painted {elapsed:.3f} s after start, peak {peak:.0f} MiB", flush=True)
    return 0
