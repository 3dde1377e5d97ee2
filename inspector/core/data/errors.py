"""The error every dataset loader raises for bad input."""

from __future__ import annotations

__all__ = ["DatasetError"]


class DatasetError(ValueError):
    """A dataset folder or specification is missing, malformed or inconsistent.

    The message names the file or folder and what is wrong with it.
    """
