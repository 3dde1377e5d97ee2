"""Models that run as their library's own module (timm, Hugging Face, OpenCLIP) behind a
capture adapter, for the families our :class:`~inspector.core.model.VisionTransformer` cannot
host faithfully (layer scale, registers, RoPE, relative position bias, split q/v biases,
attention pooling, windowed attention). See docs/ARCHITECTURE.md section 10.

The libraries are optional extras: :func:`require` imports one or says, in one line, which
extra installs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "LibraryError", "require"]

# import name -> (pip extra, what it is for)
EXTRAS: dict[str, tuple[str, str]] = {
    "timm": ("timm", "timm models"),
    "transformers": ("hf", "Hugging Face models"),
    "open_clip": ("clip", "OpenCLIP models"),
}


class LibraryError(ValueError):
    """A library model cannot be opened or inspected (the message is for the user)."""


def require(name: str) -> ModuleType:
    """Import an optional library, or raise a one-line :class:`LibraryError` naming the extra.

    Raises:
        LibraryError: e.g. ``"timm models need timm: pip install vit-inspector[timm]"``.
    """
    try:
        return importlib.import_module(name)
    except ImportError:
        extra, what = EXTRAS.get(name, (name, name))
        raise LibraryError(
            f"{what} need the '{name}' package: pip install vit-inspector[{extra}]"
        ) from None
