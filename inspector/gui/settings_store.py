"""The application's one QSettings store (issue 11): window geometry and dock state, recent
files, the folders the dialogs last used and the Mask R-CNN weights the user chose.

Every widget asks :func:`store` instead of building its own ``QSettings()``: a bare
``QSettings()`` depends on the application's organisation name and format, so two of them could
land in two files. Tests hand the window a throw-away store (``MainWindow(settings=...)``), which
:func:`use_store` makes the store of every panel as well.
"""

from __future__ import annotations

from PySide6.QtCore import QSettings

__all__ = ["store", "use_store"]

_store: QSettings | None = None


def store() -> QSettings:
    """The one store (an INI file in the user's config folder), created on first use."""
    global _store
    if _store is None:
        _store = QSettings(
            QSettings.Format.IniFormat, QSettings.Scope.UserScope, "vit-inspector", "vit-inspector"
        )
    return _store


def use_store(settings: QSettings) -> QSettings:
    """Make ``settings`` the store every widget uses from now on (the window's own)."""
    global _store
    _store = settings
    return settings
