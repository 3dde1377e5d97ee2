"""Last-layer class-token attention (Calderaro et al. 2023, seed 003)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import registry
from ._common import AGGREGATIONS, _as_attention, _check_choice, _to_map


def cls_attention(
    attn: Any,
    *,
    aggregation: str = "mean",
    eps: float = 1e-6,
    num_prefix_tokens: int = 1,
    grid: tuple[int, int] | None = None,
    rescale: bool = True,
) -> np.ndarray:
    """Last-layer class-token attention aggregated over heads (Calderaro, Lo Bosco, Rizzo and
    Vella 2023, "Visualization and Analysis of Transformer Attention", eq. 3-4; seed 003).

    ``s_h = A_L[h, 0, prefix:]`` for each head ``h``; ``S = mean_h s_h``, ``max_h s_h``, or
    ``mean_h s_h / (std_h s_h + eps)`` (``meanstd``: high where the heads agree). The standard
    deviation is the population one (``ddof = 0``), so a one-head model is defined (std 0: the
    map is the mean times ``1/eps``, i.e. the mean after rescaling).

    Args:
        attn: ``[L, heads, T, T]`` attention probabilities (only the last layer is used).
        aggregation: ``mean``, ``max`` or ``meanstd``.
        eps: added to the standard deviation.
        num_prefix_tokens, grid, rescale: as in :func:`rollout`.

    Returns:
        ``(rows, cols)`` float32 in [0, 1].
    """
    _check_choice(aggregation, AGGREGATIONS, "head aggregation")
    a = _as_attention(attn)
    s = a[-1, :, 0, :]  # (h, T): the class token's attention in the last layer, per head
    if aggregation == "mean":
        row = s.mean(axis=0)
    elif aggregation == "max":
        row = s.max(axis=0)
    else:
        row = s.mean(axis=0) / (s.std(axis=0, ddof=0) + eps)
    return _to_map(row, num_prefix_tokens, grid, rescale)


def _compute(capture: Any, settings: Any, rescale: bool) -> np.ndarray:
    return cls_attention(
        capture.attentions,
        aggregation=settings.aggregation,
        num_prefix_tokens=capture.num_prefix_tokens,
        grid=capture.grid_size,
        rescale=rescale,
    )


INFO = registry.register(
    registry.MethodInfo(
        name="cls-attention",
        label="Last-layer CLS attention",
        description="The class token's attention in the last block, heads aggregated by the "
        "mean, the max or mean / std (high where heads agree).",
        uses=frozenset({"aggregation"}),
        needs_gradients=False,
        compute=_compute,
        order=50,
    )
)
