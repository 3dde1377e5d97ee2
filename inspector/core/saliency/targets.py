"""Which score a gradient method differentiates (``MapSettings.target``): defined with the
gradients themselves in :mod:`inspector.core.capture`."""

from __future__ import annotations

from ..capture import TARGETS

__all__ = ["TARGETS"]
