"""Register tokens' attention (Darcet et al. 2024): what the registers look at, and how much
the model's output reads them -- shown beside the head/layer grid, never inside a patch map.

For one layer ``l`` and the heads fused (``mean`` by default), with ``A = fuse(A_l)``
``(T, T)``:

* ``maps[r]`` = ``A[reg_r, patches]`` reshaped to the grid: register ``r``'s own attention
  row over the patch tokens (its query; the paper's figure 9 shows these per register);
* ``from_output[r]`` = ``(w @ A)[reg_r]``: the attention the output row puts on register
  ``r``, with ``w`` the model's output row (:func:`~inspector.core.token_layout.
  output_weights`: the class token, the mean over patches, or the attention-pool query);
* ``to_patches[r]`` = ``A[reg_r, patches].sum()``: the share of register ``r``'s attention
  that goes to patches at all (the rest goes to prefix tokens).

A model without registers has ``maps`` of shape ``(0, rows, cols)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .saliency import fuse_heads
from .saliency._readout import _layout, capture_output_weights

if TYPE_CHECKING:
    from .capture import Capture

__all__ = ["RegisterAttention", "register_attention"]


@dataclass(frozen=True)
class RegisterAttention:
    """See the module text. ``tokens``: the registers' token indices."""

    layer: int
    fusion: str
    tokens: list[int]
    maps: np.ndarray  # (R, rows, cols) float32, attention probabilities (not rescaled)
    from_output: np.ndarray  # (R,) float64
    to_patches: np.ndarray  # (R,) float64


def register_attention(cap: Capture, *, layer: int = -1, fusion: str = "mean") -> RegisterAttention:
    """The registers' attention in one layer of a capture (see the module text).

    Raises:
        ValueError: layer out of range, or an unknown fusion.
    """
    L = cap.num_layers
    if not -L <= layer < L:
        raise ValueError(f"layer {layer} is out of range (0..{L - 1})")
    layer %= L
    layout = _layout(cap)
    regs = layout.register_indices
    a = fuse_heads(np.asarray(cap.attentions[layer : layer + 1]), fusion)[0]  # (T, T)
    a = a.astype(np.float64)
    rows = a[regs] if regs else np.zeros((0, layout.num_tokens))  # (R, T)
    maps = layout.to_grid(rows).astype(np.float32)  # (R, rows, cols)
    try:
        w = capture_output_weights(cap)  # (T,)
        from_output = (w @ a)[regs]
    except ValueError:  # no output row known (e.g. a pool without its weights)
        from_output = np.full(len(regs), np.nan)
    return RegisterAttention(
        layer,
        fusion,
        list(regs),
        maps,
        np.asarray(from_output, dtype=np.float64),
        rows[:, layout.patch_slice].sum(axis=-1),
    )
