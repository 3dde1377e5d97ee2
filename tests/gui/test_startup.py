"""Start-up: the window and its panels are built without the heavy libraries (issue 11), and
``main.py --first-map`` paints a map and exits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("sklearn", "scipy.stats", "scipy.ndimage", "matplotlib")


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen")


def test_the_window_with_every_panel_imports_no_heavy_library(tmp_path):
    ini = str(tmp_path / "s.ini")
    code = (
        "import sys\n"
        "from PySide6.QtCore import QSettings\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from inspector.gui.main_window import MainWindow\n"
        f"w = MainWindow(settings=QSettings({ini!r}, QSettings.Format.IniFormat))\n"
        "w.show(); app.processEvents()\n"
        "assert {'training', 'masks', 'compare'} <= set(w.panels), sorted(w.panels)\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
        "w.close()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_first_map_flag_paints_the_default_model_and_exits(tmp_path):
    from inspector.paths import DEFAULT_CHECKPOINT, default_image

    if not DEFAULT_CHECKPOINT.exists() or default_image() is None:
        pytest.skip("the default checkpoint or sample image is not in this checkout")
    env = _env()
    env["HOME"] = str(tmp_path)  # a fresh settings store
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--first-map"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "first map painted" in proc.stdout
