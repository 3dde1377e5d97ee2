"""Generic attention relevance (Chefer, Gur and Wolf 2021b)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import registry
from ._cache import cached
from ._common import _as_array, _as_pair, _check_index, _check_start, _to_map


def relevance_fuse(attn: Any, grads: Any) -> np.ndarray:
    """Relevance's head fusion ``Ā_l = mean_h((∂y_c/∂A_l ⊙ A_l)^+)``, ``[L, T, T]``
    (negatives removed per head, then the mean: Chefer et al.'s ``avg_heads``)."""
    a, g = _as_pair(attn, grads)
    prod = a * g  # (L, h, T, T)
    np.maximum(prod, 0.0, out=prod)
    return prod.mean(axis=1, dtype=a.dtype)


def relevance_matrix(attn: Any, grads: Any, *, start_layer: int = 0) -> np.ndarray:
    """The full relevance matrix ``R`` of :func:`relevance`, ``[T, T]`` (O(L T^3))."""
    mats = relevance_fuse(attn, grads)
    s = _check_start(mats.shape[0], start_layer)
    r = np.eye(mats.shape[-1], dtype=mats.dtype)
    for m in mats[s:]:
        r = r + m @ r
    return r


def relevance_from_fused(
    fused: Any,
    *,
    start_layer: int = 0,
    query: int = 0,
    num_prefix_tokens: int = 1,
    grid: tuple[int, int] | None = None,
    rescale: bool = True,
) -> np.ndarray:
    """:func:`relevance` from the fused matrices of :func:`relevance_fuse`, ``[L, T, T]``."""
    f = _as_array(fused, 3, "fused relevance", "[layers, T, T]")
    s = _check_start(f.shape[0], start_layer)
    q = _check_index(query, f.shape[-1], "query token")
    # R_L = (I + Ā_L) ··· (I + Ā_1), so row q is the vector chain v <- v + v Ā_l, last first.
    v = np.zeros(f.shape[-1], dtype=f.dtype)
    v[q] = 1.0
    for l in range(f.shape[0] - 1, s - 1, -1):
        v = v + v @ f[l]
    return _to_map(v, num_prefix_tokens, grid, rescale)


def relevance(
    attn: Any,
    grads: Any,
    *,
    start_layer: int = 0,
    query: int = 0,
    num_prefix_tokens: int = 1,
    grid: tuple[int, int] | None = None,
    rescale: bool = True,
) -> np.ndarray:
    """Generic attention-model relevance (Chefer, Gur and Wolf 2021b, "Generic
    Attention-model Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers",
    ICCV 2021; their ``generate_relevance`` for ViT).

    ``R = I``; for each layer in order ``Ā_l = mean_h((∂y_c/∂A_l ⊙ A_l)^+)`` (negatives removed
    per head, then the mean) and ``R <- R + Ā_l R``. The map is ``R[q, prefix:]``: no
    identity halving and no row normalisation. Divided by its max for display.

    Args:
        attn: ``[L, heads, T, T]`` attention probabilities.
        grads: ``[L, heads, T, T]`` gradients ``∂y_c/∂A`` (layer l paired with layer l).
        start_layer: first layer accumulated.
        query, num_prefix_tokens, grid, rescale: as in :func:`rollout`.

    Returns:
        ``(rows, cols)`` float32 in [0, 1].
    """
    return relevance_from_fused(
        relevance_fuse(attn, grads),
        start_layer=start_layer,
        query=query,
        num_prefix_tokens=num_prefix_tokens,
        grid=grid,
        rescale=rescale,
    )


def _compute(capture: Any, settings: Any, rescale: bool) -> np.ndarray:
    c = capture.resolve_class(settings.class_index)
    fused = cached(
        capture,
        ("relevance-fused", c, settings.target),
        lambda: relevance_fuse(capture.attentions, capture.gradients(c, settings.target)),
    )
    return relevance_from_fused(
        fused,
        start_layer=settings.start_layer,
        query=settings.query,
        num_prefix_tokens=capture.num_prefix_tokens,
        grid=capture.grid_size,
        rescale=rescale,
    )


INFO = registry.register(
    registry.MethodInfo(
        name="relevance",
        label="Relevance (Chefer et al.)",
        description="R = I; per layer R += mean_h((dy/dA * A)+) R: class-specific relevance "
        "without identity halving or row normalisation.",
        uses=frozenset({"start_layer", "query"}),
        needs_gradients=True,
        compute=_compute,
        order=40,
    )
)
