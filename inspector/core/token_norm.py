"""The artefact view (Darcet et al. 2024, "Vision Transformers Need Registers"): the L2 norm of
each patch token's output, per layer, with the high-norm outliers flagged.

Large ViTs trained without registers repurpose a few low-information patch tokens as global
"scratch" storage; those tokens' outputs have norms many times the others' (the paper's
DINOv2 ViT-g: ~150 against ~10-50), and they are the bright artefacts of attention maps.

The computation is a pure function: per-layer token outputs ``(L, T, D)`` or their norms
``(L, T)`` (a capture records the latter in ``extras["token_norms"]``; the timm and Hugging
Face adapters hook each block's output) and the model's token layout. An outlier is a patch
token whose norm's *robust z-score* ``(n - median) / (1.4826 * MAD)`` over that layer's patch
tokens exceeds ``z`` (default 5); a fixed threshold would not carry across model sizes. Prefix
tokens (class, registers) never enter the grid; their norms are reported apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .token_layout import TokenLayout

__all__ = [
    "NormProfile",
    "norm_profile",
    "OUTLIER_Z",
    "Outlier",
    "TokenNormView",
    "token_norm_map",
    "token_norms",
]

# The robust z-score above which a patch token is flagged: norm > median + 5 * 1.4826 * MAD.
OUTLIER_Z = 5.0


@dataclass(frozen=True)
class Outlier:
    """One high-norm patch token."""

    layer: int
    token: int
    row: int
    col: int
    norm: float
    z: float

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("layer", "token", "row", "col", "norm", "z")}


@dataclass(frozen=True)
class TokenNormView:
    """Attributes: ``map`` ``(rows, cols)`` float32 patch norms of the layer (not rescaled);
    ``outliers`` of that layer, highest first; ``prefix_norms`` ``{token index: norm}``."""

    layer: int
    map: np.ndarray
    outliers: list[Outlier]
    prefix_norms: dict[int, float]


def token_norms(outputs: np.ndarray) -> np.ndarray:
    """``(L, T, D)`` token outputs -> ``(L, T)`` L2 norms (float64); ``(L, T)`` passes."""
    a = np.asarray(outputs, dtype=np.float64)
    if a.ndim == 3:
        return np.linalg.norm(a, axis=-1)
    if a.ndim != 2:
        raise ValueError(f"token outputs must be (L, T, D) or norms (L, T), got {a.shape}")
    return a


def token_norm_map(
    outputs: np.ndarray, layout: TokenLayout, *, layer: int = -1, z: float = OUTLIER_Z
) -> TokenNormView:
    """The patch-token norms of one layer as a grid, and that layer's outliers.

    Args:
        outputs: ``(L, T, D)`` block outputs or ``(L, T)`` norms, ``T = layout.num_tokens``.
        layout: the token layout (which tokens are patches).
        layer: block index (negative from the end).
        z: robust z-score above which a patch token is an outlier.
    """
    n = token_norms(outputs)
    L = n.shape[0]
    if not -L <= layer < L:
        raise ValueError(f"layer {layer} is out of range (0..{L - 1})")
    layer %= L
    grid = layout.to_grid(n[layer])  # (rows, cols); raises on a token-count mismatch
    patches = grid.reshape(-1)
    med = float(np.median(patches))
    mad = 1.4826 * float(np.median(np.abs(patches - med)))
    scores = (patches - med) / mad if mad > 0 else np.zeros_like(patches)
    cols = layout.grid[1]
    found = [
        Outlier(
            layer,
            layout.num_prefix_tokens + int(i),
            int(i) // cols,
            int(i) % cols,
            float(patches[i]),
            float(scores[i]),
        )
        for i in np.flatnonzero(scores > z)
    ]
    found.sort(key=lambda o: -o.norm)
    prefix = {i: float(n[layer, i]) for i in range(layout.num_prefix_tokens)}
    return TokenNormView(layer, grid.astype(np.float32), found, prefix)


@dataclass(frozen=True)
class NormProfile:
    """Patch-token norms of every layer, for the per-layer view of where artefacts appear.

    Attributes: ``patches`` ``(L, P)`` float32 norms of the patch tokens; ``median`` and
    ``threshold`` ``(L,)``: each layer's median and the outlier rule's bound
    ``median + z * 1.4826 * MAD`` (``inf`` where MAD is 0: nothing is an outlier)."""

    patches: np.ndarray
    median: np.ndarray
    threshold: np.ndarray


def norm_profile(outputs: np.ndarray, layout: TokenLayout, *, z: float = OUTLIER_Z) -> NormProfile:
    """Every layer's patch norms with its median and outlier bound (:func:`token_norm_map`'s
    rule, layer by layer: a patch is an outlier of its layer when its norm is above the bound).
    """
    n = token_norms(outputs)
    # (L, rows, cols) -> (L, P): the patch tokens only, in grid order
    patches = np.stack([layout.to_grid(row).reshape(-1) for row in n])
    med = np.median(patches, axis=1)
    mad = 1.4826 * np.median(np.abs(patches - med[:, None]), axis=1)
    threshold = np.where(mad > 0, med + z * mad, np.inf)
    return NormProfile(patches.astype(np.float32), med, threshold)
