"""Shared test set-up: Qt offscreen, no user settings touched, real data path."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run, so CI cannot fail on a new random draw.
settings.register_profile("deterministic", derandomize=True, deadline=None)
settings.load_profile("deterministic")

# Qt must never try to open a display in tests (labelme does the same).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parent.parent
TINY_IMAGENET_10 = REPO.parent / "shared" / "data" / "tiny-imagenet-10"


@pytest.fixture
def tiny_imagenet_10() -> Path:
    """The real Tiny ImageNet-10 folder, or a skip with the reason."""
    if not (TINY_IMAGENET_10 / "wnids.txt").exists():
        pytest.skip(f"real Tiny ImageNet-10 data not found at {TINY_IMAGENET_10}")
    return TINY_IMAGENET_10


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """QSettings and any ~/.config writes go to a throw-away HOME, never the developer's."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    store = sys.modules.get("inspector.gui.settings_store")
    if store is not None:  # the app's one QSettings store: rebuilt under this HOME
        monkeypatch.setattr(store, "_store", None)
    # One build cache for the session: the attention kernel compiles once, not once per HOME.
    monkeypatch.setenv("VIT_INSPECTOR_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
