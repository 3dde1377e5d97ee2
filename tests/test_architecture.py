"""The one architectural rule: inspector.core never imports Qt or pyqtgraph."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import inspector.core


def test_core_never_imports_qt_or_pyqtgraph():
    modules = [m.name for m in pkgutil.walk_packages(inspector.core.__path__, "inspector.core.")]
    assert len(modules) > 5
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "qt = ('PySide6', 'pyqtgraph', 'PyQt5', 'PyQt6', 'shiboken6')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in qt)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"Qt modules loaded by inspector.core: {out.stdout}"


def test_cli_imports_without_qt():
    code = (
        "import sys, inspector.cli\n"
        "inspector.cli.build_parser()\n"
        "print(any(m.startswith(('PySide6', 'pyqtgraph')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_window_is_a_thin_shell_over_small_modules():
    """Issue 11: main_window.py at most 400 lines; the window's controllers a few hundred."""
    from pathlib import Path

    gui = Path(inspector.core.__file__).parent.parent / "gui"
    sizes = {p.name: len(p.read_text().splitlines()) for p in gui.glob("*.py")}
    assert sizes["main_window.py"] <= 400, sizes["main_window.py"]
    controllers = {n: k for n, k in sizes.items() if n.startswith("window_")}
    assert len(controllers) >= 8
    too_big = {name: n for name, n in controllers.items() if n > 400}
    assert not too_big, too_big


def test_every_module_is_a_few_hundred_lines():
    """Small modules named for what they do: none of the package's modules passes 600 lines
    (the training and masks panels were 861 and 768 before they were split)."""
    from pathlib import Path

    root = Path(inspector.__file__).parent
    sizes = {str(p.relative_to(root)): len(p.read_text().splitlines()) for p in root.rglob("*.py")}
    assert len(sizes) > 50
    too_big = {name: n for name, n in sizes.items() if n > 600}
    assert not too_big, too_big


def test_one_qsettings_store():
    """Only gui/settings_store.py builds a QSettings; every widget asks it for the store."""
    from pathlib import Path

    gui = Path(inspector.core.__file__).parent.parent / "gui"
    building = sorted(
        p.name
        for p in gui.glob("*.py")
        if "QSettings(" in p.read_text() and p.name != "settings_store.py"
    )
    assert building == []
