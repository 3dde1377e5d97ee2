"""Raw attention of one layer and one head (or the heads fused), for one query token."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import registry
from ._common import FUSIONS, _as_attention, _check_choice, _check_index, _to_map


def attention_map(
    attn: Any,
    *,
    layer: int = -1,
    head: int | None = None,
    fusion: str = "mean",
    query: int = 0,
    num_prefix_tokens: int = 1,
    grid: tuple[int, int] | None = None,
    rescale: bool = True,
) -> np.ndarray:
    """Raw attention of one layer and one head (or the heads fused) for one query token.

    ``map = A_l[h, q, prefix:]`` or ``fuse_h(A_l)[q, prefix:]``, reshaped to the grid
    (docs/ARCHITECTURE.md section 6, "raw attention of any (layer, head)").

    Args:
        attn: ``[L, heads, T, T]`` attention probabilities.
        layer: layer index (negative counts from the end; -1 = last).
        head: head index, or ``None`` to fuse all heads with ``fusion``.
        fusion: ``mean``, ``max`` or ``min`` (used when ``head`` is None).
        query: query token (0 = class token; ``prefix + r * cols + c`` is patch (r, c)).
        num_prefix_tokens: tokens before the patches.
        grid: ``(rows, cols)``; default a square grid.
        rescale: divide by the maximum (default) or return the raw probabilities.

    Returns:
        ``(rows, cols)`` float32.
    """
    _check_choice(fusion, FUSIONS, "head fusion")
    a = _as_attention(attn)
    L, H, T, _ = a.shape
    l = _check_index(layer, L, "layer")
    q = _check_index(query, T, "query token")
    rows = a[l, :, q, :]  # (h, T): the query's attention in every head of this layer
    # Fused: ndarray.mean / .max / .min over the heads, only the one asked for.
    row = getattr(rows, fusion)(axis=0) if head is None else rows[_check_index(head, H, "head")]
    return _to_map(row, num_prefix_tokens, grid, rescale)


def _compute(capture: Any, settings: Any, rescale: bool) -> np.ndarray:
    return attention_map(
        capture.attentions,
        layer=settings.layer,
        head=settings.head,
        fusion=settings.fusion,
        query=settings.query,
        num_prefix_tokens=capture.num_prefix_tokens,
        grid=capture.grid_size,
        rescale=rescale,
    )


INFO = registry.register(
    registry.MethodInfo(
        name="attention",
        label="Raw attention",
        description="One layer's attention row of the query token, one head or the heads fused.",
        uses=frozenset({"layer", "head", "fusion", "query"}),
        needs_gradients=False,
        compute=_compute,
        order=10,
    )
)
