"""Shared building blocks of the saliency methods: input checks, head fusion, discard, the
patch-grid reshape. Notation in :mod:`inspector.core.saliency`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

FUSIONS: tuple[str, ...] = ("mean", "max", "min")


AGGREGATIONS: tuple[str, ...] = ("mean", "max", "meanstd")


class SaliencyError(ValueError):
    """A saliency request that cannot be computed (unknown method, index out of range...)."""


def _as_array(x: Any, ndim: int, name: str, shape_doc: str) -> np.ndarray:
    """torch or numpy -> numpy float32/float64 (CPU tensors are viewed, not copied)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float32)
    if a.ndim != ndim or a.shape[-1] != a.shape[-2] or 0 in a.shape:
        raise SaliencyError(f"{name} must be {shape_doc}, got shape {a.shape}")
    return a


def _as_attention(attn: Any, name: str = "attention") -> np.ndarray:
    return _as_array(attn, 4, name, "[layers, heads, T, T]")


def _as_pair(attn: Any, grads: Any) -> tuple[np.ndarray, np.ndarray]:
    a = _as_attention(attn)
    g = _as_attention(grads, "gradients")
    if a.shape != g.shape:
        raise SaliencyError(f"attention {a.shape} and gradients {g.shape} must have the same shape")
    # float64 gradients (a saturated softmax's tiny probability gradients) promote the
    # product instead of underflowing in float32.
    dtype = np.result_type(a.dtype, g.dtype)
    return a.astype(dtype, copy=False), g.astype(dtype, copy=False)


def _grid(num_tokens: int, num_prefix_tokens: int, grid: tuple[int, int] | None) -> tuple[int, int]:
    n = num_tokens - num_prefix_tokens
    if num_prefix_tokens < 0 or n <= 0:
        raise SaliencyError(
            f"{num_prefix_tokens} prefix token(s) leave no patch tokens out of {num_tokens}"
        )
    if grid is None:
        side = math.isqrt(n)
        if side * side != n:
            raise SaliencyError(
                f"{n} patch tokens do not form a square grid; pass grid=(rows, cols)"
            )
        return side, side
    rows, cols = int(grid[0]), int(grid[1])
    if rows * cols != n:
        raise SaliencyError(f"grid {rows}x{cols} does not match {n} patch tokens")
    return rows, cols


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise SaliencyError(f"unknown {what} {value!r}; choose from: {', '.join(choices)}")


def _check_index(index: int, size: int, what: str) -> int:
    i = int(index)
    if not -size <= i < size:
        raise SaliencyError(f"{what} {index} is out of range (valid: 0..{size - 1}, or negative)")
    return i % size


def _check_discard(discard_ratio: float) -> None:
    if not 0.0 <= float(discard_ratio) < 1.0:
        raise SaliencyError(f"discard_ratio must be in [0, 1), got {discard_ratio}")


def _check_start(num_layers: int, start_layer: int) -> int:
    s = int(start_layer)
    if not 0 <= s < num_layers:
        raise SaliencyError(
            f"start_layer {start_layer} is out of range (valid: 0..{num_layers - 1})"
        )
    return s


def _to_map(
    row: np.ndarray, num_prefix_tokens: int, grid: tuple[int, int] | None, rescale: bool
) -> np.ndarray:
    """A token row ``(T,)`` -> patch grid ``(gh, gw)`` float32, divided by its max if asked."""
    gh, gw = _grid(row.shape[-1], num_prefix_tokens, grid)
    out = np.array(row[num_prefix_tokens:], dtype=np.float32).reshape(gh, gw)
    if rescale:
        top = float(out.max())
        # Division by the max, as vit-explain does; a map without a positive entry becomes
        # zeros rather than NaN or a sign flip.
        out = out / np.float32(top) if top > 0 else np.zeros_like(out)
    return out


def _safe_reciprocal(s: np.ndarray) -> np.ndarray:
    """1/s where s > 0, else 0 (an all-zero row stays zero instead of becoming NaN)."""
    out = np.zeros_like(s)
    np.divide(1.0, s, out=out, where=s > 0)
    return out


def fuse_heads(attn: Any, fusion: str = "mean") -> np.ndarray:
    """Fuse the head axis by ``mean``, ``max`` or ``min``: ``[L, h, T, T] -> [L, T, T]``.

    Args:
        attn: ``[L, heads, T, T]`` attention.
        fusion: one of :data:`FUSIONS`.
    """
    _check_choice(fusion, FUSIONS, "head fusion")
    a = _as_attention(attn)
    if fusion == "mean":
        return a.mean(axis=1, dtype=a.dtype)
    if fusion == "max":
        return a.max(axis=1)
    return a.min(axis=1)


def discard_lowest(fused: Any, discard_ratio: float) -> np.ndarray:
    """Zero the lowest ``discard_ratio`` fraction of each ``T x T`` matrix, never entry [0, 0].

    Matches jacobgil/vit-explain: the ``k = int(T*T*discard_ratio)`` smallest entries of the
    flattened matrix are chosen, then the class token's self entry (flat index 0) is spared, so
    ``k`` or ``k - 1`` entries become 0. Ties at the threshold are broken by flat index
    (row-major order). The threshold comes from a selection (``np.partition``, O(T^2)), not a
    sort (a full top-k over ViT-B's 12 x 38809 entries costs ~14 ms, the selection < 1 ms).

    Args:
        fused: ``[L, T, T]`` matrices (one per layer).
        discard_ratio: fraction in [0, 1).

    Returns:
        A new ``[L, T, T]`` array.
    """
    _check_discard(discard_ratio)
    f = np.ascontiguousarray(_as_array(fused, 3, "fused attention", "[layers, T, T]"))
    return _discard_flat(f.reshape(f.shape[0], -1), discard_ratio).reshape(f.shape)


def _discard_flat(
    flat: np.ndarray, discard_ratio: float, sorted_flat: np.ndarray | None = None
) -> np.ndarray:
    """Discard on ``(M, T*T)`` rows into a new array; see :func:`discard_lowest`.

    ``sorted_flat``: the same rows sorted ascending (``np.sort(flat, axis=-1)``), when the
    caller has them cached: the k-th smallest value is then a lookup instead of a selection
    (``np.partition`` costs ~1.4 ms on ViT-B's 12 x 38809 entries, and far more when many
    entries are equal, e.g. the zeros of gradient rollout's clamped fusion).
    """
    m, n = flat.shape
    k = int(n * float(discard_ratio))
    if k == 0:
        return flat.copy()
    if sorted_flat is None:
        threshold = np.partition(flat, k - 1, axis=-1)[:, k - 1]  # (M,): k-th smallest
    else:
        threshold = sorted_flat[:, k - 1]
    keep = flat > threshold[:, None]  # (M, N); at most n - k kept per row
    if sorted_flat is None:
        n_at_or_below = n - np.count_nonzero(keep, axis=-1)  # (M,), >= k
        tied_rows = np.flatnonzero(n_at_or_below != k)
    else:  # more than k entries <= threshold iff the next sorted entry equals it (k < n)
        tied_rows = np.flatnonzero(sorted_flat[:, k] == threshold)
        n_at_or_below = {
            r: np.searchsorted(sorted_flat[r], threshold[r], side="right") for r in tied_rows
        }
    for r in tied_rows:
        # Ties at the threshold: the entries equal to it are discarded in flat (row-major)
        # order until k entries are gone; the later ones are kept. One pass over the tied rows
        # only (a cumulative sum over the whole array cost ~6 ms on ViT-B).
        equal = np.flatnonzero(flat[r] == threshold[r])  # ascending flat indices
        need = k - (int(n_at_or_below[r]) - equal.size)  # how many equal entries to discard
        keep[r, equal[need:]] = True
    # Multiplying by the keep mask is ~3x faster than boolean-index assignment here.
    out = flat * keep
    out[:, 0] = flat[:, 0]  # never discard the class token's attention to itself
    return out


def _prepare(
    fused: np.ndarray, discard_ratio: float, residual: bool, sorted_flat: np.ndarray | None = None
) -> np.ndarray:
    """discard then ``A + I``: ``[L, T, T]`` (a new array). The ``/ 2`` of ``(A + I) / 2``
    cancels in both row and legacy normalisation, so it is left out. ``sorted_flat``: the
    ``[L, T*T]`` rows of ``fused`` sorted ascending, when cached (see :func:`_discard_flat`)."""
    L, T, _ = fused.shape
    flat = _discard_flat(np.ascontiguousarray(fused).reshape(L, T * T), discard_ratio, sorted_flat)
    if residual:
        flat[:, :: T + 1] += 1.0  # the diagonal of every layer
    return flat.reshape(L, T, T)


def _normalise(b: np.ndarray, legacy: bool) -> np.ndarray:
    """Row normalisation of ``[L, T, T]``; ``legacy``: vit-explain's ``a / a.sum(dim=-1)``
    without ``keepdim``, where the row sums (shape ``[T]``) broadcast along the last axis so
    entry ``(i, j)`` is divided by the sum of row ``j``."""
    inv = _safe_reciprocal(b.sum(axis=-1))  # (L, T): 1 / row sums
    return b * (inv[:, None, :] if legacy else inv[:, :, None])
