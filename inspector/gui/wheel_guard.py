"""The mouse wheel over a panel scrolls it, never a spin box or combo box the cursor happens to
pass over: such widgets take the wheel only once focused (clicked or tabbed to). Qt's
``StrongFocus`` keeps the wheel from focusing them; the filter drops the wheel event while they
are unfocused, so the scroll area under them gets it (issue 11, item 9)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QComboBox, QWidget

__all__ = ["WheelGuard", "guard_wheel"]


class WheelGuard(QObject):
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt name
        if event.type() == QEvent.Type.Wheel and isinstance(obj, QWidget) and not obj.hasFocus():
            parent = obj.parentWidget()
            if parent is not None:  # Qt passes an ignored wheel up to the scroll area
                QApplication.sendEvent(parent, event)
            return True
        return False


def guard_wheel(panel: QWidget) -> WheelGuard:
    """Apply the guard to every spin box and combo box inside ``panel`` (now); returns it."""
    guard = WheelGuard(panel)
    for w in panel.findChildren(QWidget):
        if isinstance(w, (QAbstractSpinBox, QComboBox)):
            w.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            w.installEventFilter(guard)
    return guard
