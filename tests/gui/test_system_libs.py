"""`make run`'s check of the system libraries Qt's xcb plugin needs (scripts/check_qt_libs.py)."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import check_qt_libs  # noqa: E402


def test_a_library_that_is_present_passes_and_a_missing_one_is_named():
    libc = ctypes.util.find_library("c")
    if libc is None:
        pytest.skip("no C library found by name on this system")
    missing = check_qt_libs.missing_libraries(
        {libc: "libc6", "libvit-inspector-nonexistent.so.9": "no-such-package"}
    )
    assert missing == ["no-such-package"]
    assert check_qt_libs.install_line(missing) == "sudo apt-get install -y no-such-package"


def test_the_script_agrees_with_dlopen_and_prints_one_apt_line():
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_qt_libs.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    expected = check_qt_libs.missing_libraries() if sys.platform.startswith("linux") else []
    assert proc.returncode == (1 if expected else 0)
    if expected:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if "apt-get" in ln]
        assert lines == [check_qt_libs.install_line(expected)]
    else:
        assert proc.stderr == ""


def test_makefile_runs_the_check_before_the_app():
    text = (ROOT / "Makefile").read_text()
    recipe = text.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert recipe.index("check_qt_libs.py") < recipe.index("main.py")
