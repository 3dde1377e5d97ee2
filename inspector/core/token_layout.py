"""Which token is which: the class, distillation and register tokens apart from the patch grid.

Every model family orders its tokens as ``[prefix tokens..., patch tokens (row-major)]``:

=====================================  ============================================
family                                 prefix tokens (in order)
=====================================  ============================================
ViT, DeiT III, DINOv2, BEiT, EVA-02    class
DeiT distilled                         class, distillation
DINOv2 with registers                  class, register x R
ViT reg-GAP (``*_reg4_gap_*``)         register x R (no class token)
SigLIP                                 none (an attention-pool head reads the grid)
=====================================  ============================================

A :class:`TokenLayout` names each prefix token and says how the model turns tokens into its
output (``pooling``). A saliency map reads only patch tokens (:meth:`TokenLayout.patch_slice`);
its *output row* -- the query whose attention or relevance is mapped -- is
:func:`output_weights`: the class token where the model classifies from it, the attention-pool
head's attention over the tokens where the model has such a head (SigLIP, "map" pooling), and
otherwise the mean over the patch rows (global average pooling; timm's ``avg`` pools patches
only, never prefix tokens). Both can be asked for explicitly where a model has both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "OUTPUT_ROWS",
    "POOLINGS",
    "TokenLayout",
    "TokenLayoutError",
    "output_weights",
]

TokenKind = Literal["class", "distillation", "register"]
Pooling = Literal["class", "mean", "attention-pool"]
POOLINGS: tuple[str, ...] = ("class", "mean", "attention-pool")
# What a map's output row can be; "auto" follows the model's own pooling.
OUTPUT_ROWS: tuple[str, ...] = ("auto", *POOLINGS)


class TokenLayoutError(ValueError):
    """A layout that does not fit the tokens, or an output row the model does not have."""


@dataclass(frozen=True)
class TokenLayout:
    """The token order of one model.

    Attributes:
        prefix: the kind of each token before the patch grid, in order.
        grid: ``(rows, cols)`` of the patch grid that follows them (row-major).
        pooling: how the model's output reads the tokens: ``class`` (the class token),
            ``mean`` (average over the patch tokens), ``attention-pool`` (a learned query
            attends to every token once more, SigLIP's "MAP" head).
    """

    prefix: tuple[str, ...]
    grid: tuple[int, int]
    pooling: str = "class"

    def __post_init__(self) -> None:
        bad = [k for k in self.prefix if k not in ("class", "distillation", "register")]
        if bad:
            raise TokenLayoutError(f"unknown prefix token kind(s) {bad}")
        if self.pooling not in POOLINGS:
            raise TokenLayoutError(
                f"unknown pooling {self.pooling!r}; choose from {', '.join(POOLINGS)}"
            )
        if self.pooling == "class" and "class" not in self.prefix:
            raise TokenLayoutError("class-token pooling needs a class token")
        rows, cols = self.grid
        if rows < 1 or cols < 1:
            raise TokenLayoutError(f"grid {self.grid} must be at least 1x1")

    @classmethod
    def standard(
        cls,
        grid: tuple[int, int],
        *,
        class_token: bool = True,
        distillation: bool = False,
        registers: int = 0,
        pooling: str | None = None,
    ) -> TokenLayout:
        """The usual orders: ``[class][, distillation][, register x R]`` then the grid."""
        prefix: list[str] = []
        if class_token:
            prefix.append("class")
        if distillation:
            prefix.append("distillation")
        prefix += ["register"] * int(registers)
        return cls(tuple(prefix), (int(grid[0]), int(grid[1])), pooling or "class")

    @property
    def num_prefix_tokens(self) -> int:
        return len(self.prefix)

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def num_tokens(self) -> int:
        return self.num_prefix_tokens + self.num_patches

    def indices(self, kind: str) -> list[int]:
        """Token indices of one prefix kind (``class``, ``distillation``, ``register``)."""
        return [i for i, k in enumerate(self.prefix) if k == kind]

    @property
    def class_index(self) -> int | None:
        found = self.indices("class")
        return found[0] if found else None

    @property
    def register_indices(self) -> list[int]:
        return self.indices("register")

    @property
    def patch_slice(self) -> slice:
        """The patch tokens: ``tokens[patch_slice]`` reshapes to ``grid``."""
        return slice(self.num_prefix_tokens, self.num_tokens)

    def patch_index(self, row: int, col: int) -> int:
        """Token index of patch ``(row, col)``."""
        rows, cols = self.grid
        if not (0 <= row < rows and 0 <= col < cols):
            raise TokenLayoutError(f"patch ({row}, {col}) is outside the {rows}x{cols} grid")
        return self.num_prefix_tokens + row * cols + col

    def to_grid(self, values: np.ndarray) -> np.ndarray:
        """A per-token vector ``(..., T)`` -> its patch part ``(..., rows, cols)``."""
        v = np.asarray(values)
        if v.shape[-1] != self.num_tokens:
            raise TokenLayoutError(
                f"{v.shape[-1]} tokens given for a layout of {self.num_tokens} "
                f"({self.num_prefix_tokens} prefix + {self.grid[0]}x{self.grid[1]} patches)"
            )
        return v[..., self.patch_slice].reshape(*v.shape[:-1], *self.grid)

    def describe(self) -> str:
        """E.g. ``"class + 4 registers + 16x16 patches; output: class token"``."""
        parts = []
        for kind in ("class", "distillation", "register"):
            n = len(self.indices(kind))
            if n:
                parts.append(kind if n == 1 else f"{n} {kind}s")
        parts.append(f"{self.grid[0]}x{self.grid[1]} patches")
        out = {"class": "class token", "mean": "mean of patches", "attention-pool": "attn pool"}
        return " + ".join(parts) + f"; output: {out[self.pooling]}"

    def to_dict(self) -> dict:
        return {"prefix": list(self.prefix), "grid": list(self.grid), "pooling": self.pooling}


def output_weights(
    layout: TokenLayout,
    row: str = "auto",
    *,
    pool_attention: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """The output row as weights over the tokens, ``(T,)`` float64 summing to 1.

    A map for a weight vector ``w`` is ``w @ M`` for the matrix ``M`` a method builds (one
    layer's attention, the rollout product, the relevance matrix): ``w = e_cls`` is the
    class token's row, the usual case.

    Args:
        layout: the model's token layout.
        row: ``auto`` (the model's pooling), ``class``, ``mean`` (uniform over the patch
            tokens, what global average pooling reads) or ``attention-pool``.
        pool_attention: ``(T,)`` the attention-pool head's attention over the last layer's
            tokens, heads averaged (from the capture); needed for ``attention-pool``.

    Raises:
        TokenLayoutError: the model has no such output (e.g. ``class`` without a class token).
    """
    if row not in OUTPUT_ROWS:
        raise TokenLayoutError(f"unknown output row {row!r}; choose from {', '.join(OUTPUT_ROWS)}")
    kind = layout.pooling if row == "auto" else row
    w = np.zeros(layout.num_tokens)
    if kind == "class":
        if layout.class_index is None:
            raise TokenLayoutError(
                "this model has no class token; use the mean over patches"
                + (" or the attention-pool query" if pool_attention is not None else "")
            )
        w[layout.class_index] = 1.0
        return w
    if kind == "mean":
        w[layout.patch_slice] = 1.0 / layout.num_patches
        return w
    if pool_attention is None:
        raise TokenLayoutError("this model has no attention-pool head; use the mean over patches")
    p = np.asarray(pool_attention, dtype=np.float64).reshape(-1)
    if p.shape[0] != layout.num_tokens:
        raise TokenLayoutError(
            f"attention-pool weights have {p.shape[0]} entries for {layout.num_tokens} tokens"
        )
    return p / p.sum()
