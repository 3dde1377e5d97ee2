"""Maps read out for any output row: the class token, the mean over patches, or the
attention-pool query (:func:`~inspector.core.token_layout.output_weights`).

Every attention method builds a token-by-token matrix ``M`` (one layer's attention, the
rollout product ``Ã_L ··· Ã_1``, the relevance matrix ``R``) and reads one row of it. For a
model without a class token that row is a weighted sum of rows, ``w @ M``, with ``w`` the
output row's weights over the tokens; with ``w = e_cls`` this is exactly the class-token map.
Only patch tokens enter the map (``layout.to_grid``): class, distillation and register
tokens never do. The vector chain ``v <- v Ã_l`` costs ``O(L T^2)``, as rollout's own does.

Relevance keeps Chefer et al.'s identity start (``R = I + ...``); the identity's share of the
output row (``w`` itself) is removed before the read-out, so that a mean-pooled model does not
give every patch the same floor (for the class token, ``w`` has no patch entry and nothing
changes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..token_layout import TokenLayout, output_weights
from ._common import fuse_heads
from .grad_rollout import grad_rollout_layers
from .relevance import relevance_fuse
from .rollout import rollout_layers

if TYPE_CHECKING:
    from ..capture import Capture

__all__ = ["READOUT_METHODS", "capture_output_weights", "readout_map", "uses_readout"]

READOUT_METHODS: tuple[str, ...] = ("attention", "rollout", "grad-rollout", "relevance")


def uses_readout(capture: Capture) -> bool:
    """Whether a capture's output row is not the class token at index 0 (no class token,
    mean or attention-pool output): then the methods read out through this module."""
    layout = getattr(capture, "token_layout", None)
    return layout is not None and (layout.pooling != "class" or layout.class_index != 0)


def _layout(capture: Capture) -> TokenLayout:
    if capture.token_layout is not None:
        return capture.token_layout
    p = capture.num_prefix_tokens
    return TokenLayout(("class",) + ("register",) * (p - 1), capture.grid_size, "class")


def capture_output_weights(capture: Capture, row: str = "auto") -> np.ndarray:
    """The output row ``(T,)`` for a capture (the pool attention comes from its extras)."""
    pool = capture.extras.get("pool_attention")
    return output_weights(
        _layout(capture), row, pool_attention=None if pool is None else pool.numpy()
    )


def _rescale(grid: np.ndarray) -> np.ndarray:
    out = grid.astype(np.float32)
    top = float(out.max())
    return out / np.float32(top) if top > 0 else np.zeros_like(out)


def readout_map(
    capture: Capture,
    method: str,
    *,
    row: str = "auto",
    layer: int = -1,
    head: int | None = None,
    fusion: str = "mean",
    discard_ratio: float = 0.0,
    residual: bool | None = None,
    class_index: int | None = None,
    target: str = "logit",
    start_layer: int = 0,
    rescale: bool = True,
) -> np.ndarray:
    """The ``(rows, cols)`` map of ``method`` for the output row ``row``.

    Args:
        capture: the capture.
        method: ``attention`` (one layer, one head or fused), ``rollout``, ``grad-rollout``,
            ``relevance``.
        row: ``auto`` (the model's own pooling), ``class``, ``mean``, ``attention-pool``.
        layer, head, fusion: for ``attention``; fusion also for ``rollout``.
        discard_ratio, residual: rollout's (residual ``None`` follows the model).
        class_index: target of the gradient methods (``None`` = the predicted class).
        target: the gradient target (``logit``, ``probability``, ``log-probability``).
        start_layer: first layer of rollout / relevance.
        rescale: divide by the maximum.
    """
    if method not in READOUT_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(READOUT_METHODS)}")
    layout = _layout(capture)
    w = capture_output_weights(capture, row)  # (T,)
    attn = capture.attentions.numpy()  # (L, h, T, T)
    res = capture.residual if residual is None else residual
    if method == "attention":
        a = attn[layer]  # (h, T, T)
        m = a[head] if head is not None else fuse_heads(a[None], fusion)[0]  # (T, T)
        v = w @ m.astype(np.float64)
    elif method in ("rollout", "grad-rollout"):
        if method == "rollout":
            mats = rollout_layers(
                attn, fusion=fusion, discard_ratio=discard_ratio, residual=res,
                start_layer=start_layer,
            )  # fmt: skip
        else:
            grads = capture.gradients(class_index, target).numpy()
            mats = grad_rollout_layers(
                attn, grads, discard_ratio=discard_ratio, residual=res, start_layer=start_layer
            )
        v = w.copy()
        for m in mats[::-1]:  # row of R = Ã_L ··· Ã_1: v <- v Ã_L, then Ã_{L-1}, ...
            v = v @ m.astype(np.float64)
    else:
        fused = relevance_fuse(attn, capture.gradients(class_index, target).numpy())  # (L,T,T)
        r = np.eye(fused.shape[-1])
        for m in fused[start_layer:]:
            r = r + m.astype(np.float64) @ r
        v = w @ r - w
    grid = layout.to_grid(v)
    return _rescale(grid) if rescale else grid.astype(np.float32)
