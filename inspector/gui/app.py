"""Application start-up: arguments, the QApplication, the main window, ``--screenshot``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from inspector.paths import (  # noqa: F401 - re-exported for tests and scripts
    DEFAULT_CHECKPOINT,
    REPO_ROOT,
    SAMPLES,
    STUDY_CHECKPOINTS,
    default_image,
    study_checkpoints,
)


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
        "--screenshot",
        type=Path,
        default=None,
        help="render the window offscreen to this PNG and exit",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.screenshot is not None:
        # Must be set before the QApplication exists.
        os.environ["QT_QPA_PLATFORM"] = "offscreen"

    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("ViT Inspector")
    app.setOrganizationName("ViT Inspector")
    window = MainWindow()
    if args.screenshot is not None or not window.restored_geometry:
        window.resize(1280, 800)
    checkpoint = args.checkpoint or (DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.exists() else None)
    images = list(args.images) or ([default_image()] if default_image() else [])
    if checkpoint is not None:
        window.open_checkpoint(checkpoint)
    for image in images[:1]:
        window.open_image(image)
    window.show()

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
