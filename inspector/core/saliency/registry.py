"""The method registry: every saliency method's name, label, settings and computation, once.

Each method lives in its own module of this package and registers a :class:`MethodInfo` when
the package is imported (:mod:`inspector.core.saliency` imports every module it holds), so
adding a method is one new file. The CLI's choices, the GUI's controls, menus and shortcuts,
the exports' metadata and the compare view all read this registry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._common import SaliencyError

__all__ = ["MethodInfo", "get", "methods", "names", "register"]

# Every MapSettings field a method may read; `uses` names a subset.
SETTING_NAMES: frozenset[str] = frozenset(
    {
        "fusion",
        "discard_ratio",
        "layer",
        "head",
        "query",
        "start_layer",
        "legacy_normalisation",
        "residual",
        "class_index",
        "aggregation",
        "target",
    }
)


@dataclass(frozen=True)
class MethodInfo:
    """One saliency method.

    Attributes:
        name: the identifier (CLI choice, file suffix), e.g. ``"rollout"``.
        label: what menus and captions show, e.g. ``"Attention rollout"``.
        description: one sentence for tooltips and ``--help``.
        uses: the :class:`~inspector.core.saliency.MapSettings` fields the method reads.
        needs_gradients: whether it needs ``d y / d A`` (then ``class_index`` and ``target``
            are among its settings).
        compute: ``(capture, settings, rescale) -> (rows, cols) float32``; with ``rescale`` the
            map is divided by its maximum (all-zero stays zero), else the method's raw values.
        order: position in menus and shortcuts (Ctrl+1 is the lowest).
        reads_output_row: the map is a row of a token-by-token matrix read at the model's
            output (class token, mean, attention pool); False for maps of the tokens
            themselves (``token-norm``), which need no output row.
    """

    name: str
    label: str
    description: str
    uses: frozenset[str]
    needs_gradients: bool
    compute: Callable[..., Any]
    order: int = 100
    reads_output_row: bool = True

    def __post_init__(self) -> None:
        unknown = set(self.uses) - SETTING_NAMES
        if unknown:
            raise SaliencyError(f"method {self.name!r} uses unknown settings {sorted(unknown)}")


_REGISTRY: dict[str, MethodInfo] = {}


def register(info: MethodInfo) -> MethodInfo:
    """Add a method (called once by its module at import)."""
    if info.name in _REGISTRY and _REGISTRY[info.name] is not info:
        raise SaliencyError(f"saliency method {info.name!r} is registered twice")
    uses = set(info.uses) | ({"class_index", "target"} if info.needs_gradients else set())
    full = dataclasses.replace(info, uses=frozenset(uses))
    _REGISTRY[info.name] = full
    return full


def methods() -> tuple[MethodInfo, ...]:
    """Every registered method in menu order."""
    return tuple(sorted(_REGISTRY.values(), key=lambda m: (m.order, m.name)))


def names() -> tuple[str, ...]:
    return tuple(m.name for m in methods())


def get(name: str) -> MethodInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise SaliencyError(
            f"unknown saliency method {name!r}; choose from: {', '.join(names())}"
        ) from None
