"""Method shortcuts and the View > Method menu, pressed and clicked as a user would (issue 11)."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from gui_helpers import loaded as _loaded  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from inspector.core.saliency import registry  # noqa: E402

METHODS = registry.names()
_DIGITS = [Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3, Qt.Key.Key_4, Qt.Key.Key_5]


def test_ctrl_digit_selects_that_method_and_redraws(qtbot, window, files):
    _loaded(qtbot, window, files)
    window.activateWindow()
    # Last first, so that no expectation coincides with the default (the first method).
    for i in reversed(range(min(len(METHODS), len(_DIGITS)))):
        with qtbot.waitSignal(window.overlayUpdated, timeout=20_000):
            qtbot.keyClick(window, _DIGITS[i], Qt.KeyboardModifier.ControlModifier)
        assert window.wait_until_idle(20_000)
        assert window.controls.method.currentData() == METHODS[i]
        assert window.last_render.settings.map.method == METHODS[i]


def test_view_method_menu_entries_select_their_method(qtbot, window, files):
    _loaded(qtbot, window, files)
    entries = [a for a in window.method_menu.actions() if not a.isSeparator()]
    assert len(entries) == len(METHODS)
    for i in reversed(range(len(entries))):
        entries[i].trigger()  # emits triggered(False), exactly what a menu click does
        assert window.controls.method.currentData() == METHODS[i]
        # The entry's text is the method's label as the controls show it.
        assert entries[i].text() == window.controls.method.itemText(
            window.controls.method.findData(METHODS[i])
        )
