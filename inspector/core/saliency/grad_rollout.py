"""Gradient rollout (jacobgil/vit-explain), class-specific."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import registry
from ._cache import cached, sorted_rows
from ._common import _as_pair, _check_start, _normalise, _prepare
from .rollout import _rollout_fused, rollout_args, rollout_fused


def grad_fuse(attn: Any, grads: Any) -> np.ndarray:
    """Gradient rollout's head fusion ``max(mean_h(A_l ⊙ ∂y_c/∂A_l), 0)``, ``[L, T, T]``.

    Mean over heads first, then negatives set to 0 (vit-explain's order). Layer l's attention
    is paired with layer l's gradient (vit-explain pairs them in reverse order through its
    backward hooks, a known bug).
    """
    a, g = _as_pair(attn, grads)
    fused = (a * g).mean(axis=1, dtype=a.dtype)  # (L, T, T)
    return np.maximum(fused, 0.0, out=fused)


def grad_rollout_layers(
    attn: Any,
    grads: Any,
    *,
    discard_ratio: float = 0.0,
    residual: bool = True,
    start_layer: int = 0,
    legacy_normalisation: bool = False,
) -> np.ndarray:
    """The per-layer matrices of gradient rollout, ``[L - start_layer, T, T]``:
    ``Ã_l = rownorm((discard(max(mean_h(A_l ⊙ ∂y_c/∂A_l), 0)) + I) / 2)``."""
    fused = grad_fuse(attn, grads)
    s = _check_start(fused.shape[0], start_layer)
    return _normalise(_prepare(fused[s:], discard_ratio, residual), legacy_normalisation)


def grad_rollout(
    attn: Any,
    grads: Any,
    *,
    discard_ratio: float = 0.0,
    residual: bool = True,
    start_layer: int = 0,
    legacy_normalisation: bool = False,
    query: int = 0,
    num_prefix_tokens: int = 1,
    grid: tuple[int, int] | None = None,
    rescale: bool = True,
) -> np.ndarray:
    """Gradient rollout (jacobgil/vit-explain ``vit_grad_rollout.py``), class-specific.

    Per layer ``Ā_l = max(mean_h(A_l ⊙ ∂y_c/∂A_l), 0)`` (mean over heads first, then negatives
    set to 0, as vit-explain does), then discard, identity and row normalisation as in
    :func:`rollout`; ``R = Ã_L ··· Ã_start``; map ``R[q, prefix:]`` divided by its max.

    Args:
        attn: ``[L, heads, T, T]`` attention probabilities.
        grads: ``[L, heads, T, T]`` gradient of the class score ``y_c`` w.r.t. the attention
            (``Capture.gradients(c)``), layer l paired with layer l.
        discard_ratio, residual, start_layer, legacy_normalisation, query, num_prefix_tokens,
        grid, rescale: as in :func:`rollout`.

    Returns:
        ``(rows, cols)`` float32 in [0, 1].
    """
    return rollout_fused(
        grad_fuse(attn, grads),
        discard_ratio=discard_ratio,
        residual=residual,
        start_layer=start_layer,
        legacy_normalisation=legacy_normalisation,
        query=query,
        num_prefix_tokens=num_prefix_tokens,
        grid=grid,
        rescale=rescale,
    )


def _compute(capture: Any, settings: Any, rescale: bool) -> np.ndarray:
    c = capture.resolve_class(settings.class_index)
    key: tuple = ("grad-fused", c, settings.target)
    fused = cached(
        capture, key, lambda: grad_fuse(capture.attentions, capture.gradients(c, settings.target))
    )
    return _rollout_fused(
        fused, sorted_rows(capture, key, fused), **rollout_args(capture, settings, rescale)
    )


INFO = registry.register(
    registry.MethodInfo(
        name="grad-rollout",
        label="Gradient rollout",
        description="Rollout of each layer's attention weighted by its gradient for the target "
        "class (mean over heads, negatives clamped).",
        uses=frozenset(
            {"discard_ratio", "start_layer", "query", "residual", "legacy_normalisation"}
        ),
        needs_gradients=True,
        compute=_compute,
        order=30,
    )
)
