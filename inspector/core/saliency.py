"""Saliency maps as pure functions of captured attention (and its gradients).

Notation (MISSION.md section 2): per layer ``l`` the attention probabilities ``A_l`` have shape
``[heads, T, T]`` (rows sum to 1); token 0 is the class token, the first ``num_prefix_tokens``
tokens are prefix tokens (class, then DeiT's distillation token), the rest is the patch grid in
row-major order. Every function takes the stacked attention ``attn`` of one image,
``[L, heads, T, T]`` (torch or numpy), and returns the patch-grid map ``(gh, gw)`` as a
float32 numpy array, scaled so that its maximum is 1 (``rescale=True``, the default; an all-zero
map stays zero, so every map is finite and in [0, 1]).

Methods (selectable by name in :func:`compute_map`):

* ``attention``  -- raw attention of one layer / head: :func:`attention_map`.
* ``rollout``    -- attention rollout (Abnar and Zuidema 2020, as in jacobgil/vit-explain):
  :func:`rollout`.
* ``grad-rollout`` -- gradient-weighted rollout (jacobgil/vit-explain): :func:`grad_rollout`.
* ``relevance``  -- generic attention relevance (Chefer, Gur and Wolf 2021b): :func:`relevance`.
* ``cls-attention`` -- last-layer class-token attention (Calderaro et al. 2023, seed 003):
  :func:`cls_attention`.

Speed: rollout-type maps only need one row of ``R = Ã_L ··· Ã_s``, so the row is propagated as
a vector through the layers, last layer first (``v = e_q; v <- v Ã_l`` for l = L..s), which is
O(L T^2) instead of O(L T^3); the
discard threshold uses a selection (``np.partition``), not a sort, and :func:`compute_map`
memoises each fused matrix's entries sorted once, so that for a new discard ratio the threshold
is a lookup (ViT-B, discard 0.9: ~1.3 ms per map on a 2-core CPU).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:  # only for type hints; saliency stays a pure function of tensors
    from .capture import Capture

__all__ = [
    "AGGREGATIONS",
    "FUSIONS",
    "METHODS",
    "MapSettings",
    "SaliencyError",
    "attention_map",
    "cls_attention",
    "compute_map",
    "discard_lowest",
    "fuse_heads",
    "grad_fuse",
    "grad_rollout",
    "grad_rollout_layers",
    "relevance",
    "relevance_from_fused",
    "relevance_fuse",
    "relevance_matrix",
    "rollout",
    "rollout_fused",
    "rollout_layers",
    "rollout_matrix",
]

METHODS: tuple[str, ...] = ("attention", "rollout", "grad-rollout", "relevance", "cls-attention")
FUSIONS: tuple[str, ...] = ("mean", "max", "min")
AGGREGATIONS: tuple[str, ...] = ("mean", "max", "meanstd")


class SaliencyError(ValueError):
    """A saliency request that cannot be computed (unknown method, index out of range...)."""


# --------------------------------------------------------------------------------------------
# Input checks and small helpers
# --------------------------------------------------------------------------------------------
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
    return a, g.astype(a.dtype, copy=False)


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


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Raw attention
# --------------------------------------------------------------------------------------------
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
    (MISSION.md section 2, "raw attention of any (layer, head)").

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


# --------------------------------------------------------------------------------------------
# Attention rollout
# --------------------------------------------------------------------------------------------
def rollout_layers(
    attn: Any,
    *,
    fusion: str = "mean",
    discard_ratio: float = 0.0,
    residual: bool = True,
    start_layer: int = 0,
    legacy_normalisation: bool = False,
) -> np.ndarray:
    """The per-layer matrices ``Ã_l`` that rollout multiplies, ``[L - start_layer, T, T]``.

    ``Ã_l = rownorm((discard(fuse_h(A_l)) + I) / 2)`` (identity only when ``residual``).
    Exposed for inspection and tests: rows of ``Ã_l`` sum to 1 (unless legacy normalisation,
    or a row that is entirely zero, which stays zero). Arguments as in :func:`rollout`.
    """
    a = _as_attention(attn)
    s = _check_start(a.shape[0], start_layer)
    b = _prepare(fuse_heads(a[s:], fusion), discard_ratio, residual)
    return _normalise(b, legacy_normalisation)


def rollout_matrix(attn: Any, **kwargs: Any) -> np.ndarray:
    """The full rollout matrix ``R = Ã_L ··· Ã_start``, ``[T, T]`` (O(L T^3); for inspection).

    Takes the keyword arguments of :func:`rollout_layers`.
    """
    mats = rollout_layers(attn, **kwargs)
    r = np.eye(mats.shape[-1], dtype=mats.dtype)
    for m in mats:
        r = m @ r
    return r


def rollout_fused(
    fused: Any,
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
    """Rollout from per-layer fused matrices ``[L, T, T]`` (heads already fused).

    The part of :func:`rollout` and :func:`grad_rollout` after head fusion: discard, identity,
    normalisation, product, map. Lets a caller cache the fused matrices (the most expensive
    step: it reads every head) and recompute maps for new discard ratios in milliseconds.
    """
    return _rollout_fused(
        fused,
        None,
        discard_ratio=discard_ratio,
        residual=residual,
        start_layer=start_layer,
        legacy_normalisation=legacy_normalisation,
        query=query,
        num_prefix_tokens=num_prefix_tokens,
        grid=grid,
        rescale=rescale,
    )


def _rollout_fused(
    fused: Any,
    sorted_flat: np.ndarray | None,
    *,
    discard_ratio: float,
    residual: bool,
    start_layer: int,
    legacy_normalisation: bool,
    query: int,
    num_prefix_tokens: int,
    grid: tuple[int, int] | None,
    rescale: bool = True,
) -> np.ndarray:
    """:func:`rollout_fused` with the fused rows optionally pre-sorted: ``sorted_flat`` is
    ``np.sort(fused.reshape(L, T*T), axis=-1)`` (memoised on the capture by
    :func:`compute_map`), which turns the discard threshold into a lookup."""
    f = _as_array(fused, 3, "fused attention", "[layers, T, T]")
    _check_discard(discard_ratio)
    s = _check_start(f.shape[0], start_layer)
    q = _check_index(query, f.shape[-1], "query token")
    b = _prepare(f[s:], discard_ratio, residual, None if sorted_flat is None else sorted_flat[s:])
    # Row q of R = Ã_L ··· Ã_s as a vector chain, last layer first: v = e_q; v <- v Ã_l,
    # O(L T^2) instead of the O(L T^3) matrix product, and without forming Ã_l: row
    # normalisation is Ã = D⁻¹ B (D = diag of the row sums of B = discard(F) + I), so
    # v Ã = (v / s) B; the legacy form is Ã = B D⁻¹, so v Ã = (v B) / s.
    T = f.shape[-1]
    v = np.zeros(T, dtype=b.dtype)
    v[q] = 1.0
    # (L, T): 1 / row sums, as matrix-vector products (~3x faster than a sum reduction here)
    inv = _safe_reciprocal(b @ np.ones(T, dtype=b.dtype))
    for l in range(b.shape[0] - 1, -1, -1):
        v = (v @ b[l]) * inv[l] if legacy_normalisation else (v * inv[l]) @ b[l]
    return _to_map(v, num_prefix_tokens, grid, rescale)


def rollout(
    attn: Any,
    *,
    fusion: str = "mean",
    discard_ratio: float = 0.0,
    residual: bool = True,
    start_layer: int = 0,
    legacy_normalisation: bool = False,
    query: int = 0,
    num_prefix_tokens: int = 1,
    grid: tuple[int, int] | None = None,
    rescale: bool = True,
) -> np.ndarray:
    """Attention rollout (Abnar and Zuidema 2020, "Quantifying Attention Flow in
    Transformers"; as implemented in jacobgil/vit-explain ``vit_rollout.py``).

    Per layer: fuse heads (mean/max/min); zero the lowest ``discard_ratio`` fraction of the fused
    matrix except entry [0, 0]; add the identity for the residual path, ``(A + I) / 2``;
    normalise each **row** to sum to 1. Then ``R = Ã_L ··· Ã_start`` and the map is
    ``R[q, prefix:]`` reshaped to the grid, divided by its max.

    Args:
        attn: ``[L, heads, T, T]`` attention probabilities.
        fusion: head fusion, ``mean``, ``max`` or ``min`` (the paper found min most focused;
            vit-explain's command line defaults to max with discard 0.9).
        discard_ratio: fraction of the lowest fused entries set to 0, in [0, 1).
        residual: add the identity (``(A + I) / 2``); pass ``model.cfg.residual`` ("auto") for
            models without residual connections, where there is no identity path.
        start_layer: first layer multiplied in (0 = all layers).
        legacy_normalisation: reproduce vit-explain's ``a / a.sum(dim=-1)`` bug, which divides
            column ``j`` by the sum of row ``j`` instead of normalising rows (old figures).
        query: the row of ``R`` to show (0 = class token).
        num_prefix_tokens: tokens before the patches.
        grid: ``(rows, cols)``; default a square grid.
        rescale: divide by the maximum.

    Returns:
        ``(rows, cols)`` float32 in [0, 1].
    """
    a = _as_attention(attn)
    s = _check_start(a.shape[0], start_layer)
    return rollout_fused(
        fuse_heads(a[s:], fusion),
        discard_ratio=discard_ratio,
        residual=residual,
        legacy_normalisation=legacy_normalisation,
        query=query,
        num_prefix_tokens=num_prefix_tokens,
        grid=grid,
        rescale=rescale,
    )


# --------------------------------------------------------------------------------------------
# Gradient rollout
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Generic attention relevance (Chefer et al. 2021b)
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Last-layer class-token attention (seed 003)
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Dispatcher
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MapSettings:
    """Every knob of a saliency map. Defaults are vit-explain's command-line defaults for
    rollout (max fusion, discard 0.9).

    Attributes:
        method: one of :data:`METHODS`.
        fusion: head fusion for ``attention`` (when ``head`` is None) and ``rollout``.
        discard_ratio: for ``rollout`` and ``grad-rollout``, in [0, 1).
        layer: layer for ``attention`` (negative from the end).
        head: head for ``attention``; ``None`` fuses the heads.
        query: query token (0 = class token) for every method except ``cls-attention``.
        start_layer: first layer for ``rollout``, ``grad-rollout`` and ``relevance``.
        legacy_normalisation: vit-explain's column-normalisation bug (rollout methods).
        residual: add the identity in rollout; ``None`` = follow the model ("auto").
        class_index: target class for gradient methods; ``None`` = the predicted class.
        aggregation: head aggregation for ``cls-attention``.
    """

    method: str = "rollout"
    fusion: str = "max"
    discard_ratio: float = 0.9
    layer: int = -1
    head: int | None = None
    query: int = 0
    start_layer: int = 0
    legacy_normalisation: bool = False
    residual: bool | None = None
    class_index: int | None = None
    aggregation: str = "mean"

    def __post_init__(self) -> None:
        _check_choice(self.method, METHODS, "saliency method")
        _check_choice(self.fusion, FUSIONS, "head fusion")
        _check_choice(self.aggregation, AGGREGATIONS, "head aggregation")
        _check_discard(self.discard_ratio)
        if self.start_layer < 0:
            raise SaliencyError(f"start_layer must be >= 0, got {self.start_layer}")

    def replace(self, **changes: Any) -> MapSettings:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def needs_gradients(self) -> bool:
        return self.method in ("grad-rollout", "relevance")


def _cached(capture: Capture, key: tuple, compute: Any) -> np.ndarray:
    """A derived array memoised on the capture (read-only, so no caller can corrupt it)."""

    def make() -> np.ndarray:
        arr = compute()
        arr.flags.writeable = False
        return arr

    return capture.cached(key, make)


def _sorted_rows(capture: Capture, key: tuple, fused: np.ndarray) -> np.ndarray:
    """Each layer's fused matrix flattened and sorted ascending, ``[L, T*T]``, memoised beside
    the fused matrices: the discard threshold for any ratio is then ``sorted[:, k - 1]``
    (sorting costs ~3 ms once for ViT-B; every slider move after that saves the selection)."""
    L = fused.shape[0]
    return _cached(
        capture,
        ("sorted", *key),
        lambda: np.sort(np.ascontiguousarray(fused).reshape(L, -1), axis=-1),
    )


def compute_map(
    capture: Capture, method: str | None = None, settings: MapSettings | None = None
) -> np.ndarray:
    """The patch-grid map ``(rows, cols)`` float32 in [0, 1] for a capture.

    Pure function of the capture's cached tensors. The head-fused matrices (the step that
    reads every head: ~20 ms for ViT-B here) are memoised on the capture per fusion (and per
    class for gradient methods), together with their entries sorted per layer, so moving the
    discard slider costs only a threshold lookup, the discard, the normalisation and the
    vector chain (~1 ms for ViT-B). Gradient methods ask the capture for ``∂y_c/∂A``,
    which it computes once per class and caches.

    Args:
        capture: a :class:`~inspector.core.capture.Capture`.
        method: one of :data:`METHODS`; overrides ``settings.method`` when given.
        settings: the other knobs; default :class:`MapSettings()`.

    Raises:
        SaliencyError: unknown method or an index out of range.
    """
    settings = settings or MapSettings()
    if method is not None and method != settings.method:
        settings = settings.replace(method=method)
    attn = capture.attentions
    common: dict[str, Any] = {
        "num_prefix_tokens": capture.num_prefix_tokens,
        "grid": capture.grid_size,
        "query": settings.query,
    }
    residual = capture.residual if settings.residual is None else settings.residual
    m = settings.method
    if m == "attention":
        return attention_map(
            attn, layer=settings.layer, head=settings.head, fusion=settings.fusion, **common
        )
    if m == "cls-attention":
        del common["query"]
        return cls_attention(attn, aggregation=settings.aggregation, **common)
    rollout_args = {
        "discard_ratio": settings.discard_ratio,
        "residual": residual,
        "start_layer": settings.start_layer,
        "legacy_normalisation": settings.legacy_normalisation,
        **common,
    }
    if m == "rollout":
        key: tuple = ("fused", settings.fusion)
        fused = _cached(capture, key, lambda: fuse_heads(attn, settings.fusion))
        return _rollout_fused(fused, _sorted_rows(capture, key, fused), **rollout_args)
    c = capture.resolve_class(settings.class_index)
    if m == "grad-rollout":
        key = ("grad-fused", c)
        fused = _cached(capture, key, lambda: grad_fuse(attn, capture.gradients(c)))
        return _rollout_fused(fused, _sorted_rows(capture, key, fused), **rollout_args)
    fused = _cached(
        capture, ("relevance-fused", c), lambda: relevance_fuse(attn, capture.gradients(c))
    )
    return relevance_from_fused(fused, start_layer=settings.start_layer, **common)
