"""Swin (timm ``SwinTransformer``): windowed, hierarchical attention, and the maps defined on it.

A Swin block attends within ``w x w`` windows of its stage's patch grid (every other block
shifts the windows by ``w/2``, cyclically), and patch merging halves the grid between stages.
So the well-defined views are:

* **window attention** of a query patch for a chosen stage (and block): the query's attention
  row inside its window, placed back on that stage's grid (zero outside the window);
* **last-stage relevance**: gradient-weighted attention (Chefer et al.'s rule,
  ``R <- R + mean_h((dy/dA * A)^+) R``) over the last stage's blocks, read out for the mean
  over tokens (Swin classifies from the average of its last-stage tokens); the identity each
  token keeps of itself is left out (``R - I``), else every patch gets the same floor.

**Rollout is refused**: it multiplies attention matrices across all layers, but here the token
set changes at every patch merging and each matrix is block-diagonal over shifted windows, so
no product over the network means "attention flow" (:data:`ROLLOUT_REFUSAL`).

The capture protocol sees the *last stage* as the attention model: its window matrices are
scattered (differentiably) into full ``(N, N)`` matrices over the stage's ``N`` tokens, no
prefix tokens, mean pooling; earlier stages stay as windows in ``last_extras``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..model import ModelOutput
from ..token_layout import TokenLayout
from . import LibraryError

__all__ = [
    "ROLLOUT_REFUSAL",
    "SwinAdapter",
    "last_stage_relevance",
    "window_attention_map",
    "window_token_index",
]

ROLLOUT_REFUSAL = (
    "rollout is not defined for Swin: attention is windowed (shifted every other block) and "
    "patch merging changes the tokens between stages, so attention cannot be multiplied "
    "through the network; use window attention of a stage or the last-stage relevance"
)


def window_token_index(
    grid: tuple[int, int], window: tuple[int, int], shift: tuple[int, int]
) -> np.ndarray:
    """For each window and in-window position, the patch it holds: ``(nW, w*w)`` flat indices
    into the stage grid (row-major), following timm: roll by ``-shift``, then partition."""
    H, W = grid
    wh, ww = window
    if H % wh or W % ww:
        raise LibraryError(f"stage grid {H}x{W} is not a whole number of {wh}x{ww} windows")
    rows = (np.arange(H)[:, None] + shift[0]) % H  # shifted (r', c') holds patch (r'+s) mod H
    cols = (np.arange(W)[None, :] + shift[1]) % W
    flat = rows * W + cols  # (H, W): which original patch sits at shifted position
    win = flat.reshape(H // wh, wh, W // ww, ww).transpose(0, 2, 1, 3)  # (nh, nw, wh, ww)
    return win.reshape(-1, wh * ww)


class SwinAdapter:
    """Capture adapter over a timm ``SwinTransformer`` (see the module text)."""

    residual = True
    outputs_probabilities = False
    rollout_refusal = ROLLOUT_REFUSAL

    def __init__(self, model: nn.Module, *, image_size: int) -> None:
        self.model = model.eval()
        for m in model.modules():
            if hasattr(m, "fused_attn"):
                m.fused_attn = False
        self.image_size = int(image_size)
        self.patch_size = int(model.patch_embed.proj.weight.shape[-1])
        self.blocks: list[list[nn.Module]] = [list(layer.blocks) for layer in model.layers]
        self.stage_grids: list[tuple[int, int]] = []
        g = self.image_size // self.patch_size
        for s, layer in enumerate(model.layers):
            if s > 0 and not isinstance(layer.downsample, nn.Identity):
                g //= 2
            self.stage_grids.append((g, g))
        self._attn: dict[tuple[int, int], torch.Tensor] = {}
        self._full_attn: dict[int, torch.Tensor] = {}
        last = len(self.blocks) - 1
        self._last = last
        for s, stage in enumerate(self.blocks):
            for b, block in enumerate(stage):
                block.attn.attn_drop.register_forward_hook(self._hook(s, b))
        self.grid_size = self.stage_grids[last]
        self.token_layout = TokenLayout((), self.grid_size, "mean")
        self.num_prefix_tokens = 0
        self.num_layers = len(self.blocks[last])
        self.num_heads = int(self.blocks[last][0].attn.num_heads)
        self.num_classes = int(getattr(model, "num_classes", 0) or 0)
        self.headless = self.num_classes == 0
        self.last_extras: dict[str, Any] = {}
        self._index = [self._block_index(last, b) for b in range(self.num_layers)]

    def _hook(self, s: int, b: int):
        def hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> torch.Tensor | None:
            self._attn[(s, b)] = out  # (B * nW, heads, w*w, w*w), in the graph
            if s != self._last:
                return None
            # Last stage: scatter the windows into the full (B, h, N, N) matrix and let the
            # block go on with the windows gathered back from it (the same numbers), so that
            # the full matrix is on the path to the output and dy/dA is taken on it.
            index = self._index[b]
            full = self._full(out, index, out.shape[0] // index.shape[0])
            self._full_attn[b] = full
            return self._gather(full, index)

        return hook

    def window_geometry(self, stage: int, block: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """``(window, shift)`` of one block, as timm set them for this input size."""
        blk = self.blocks[stage][block]
        return tuple(blk.window_size), tuple(blk.shift_size)  # type: ignore[return-value]

    def _block_index(self, stage: int, block: int) -> np.ndarray:
        window, shift = self.window_geometry(stage, block)
        return window_token_index(self.stage_grids[stage], window, shift)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _full(self, a: torch.Tensor, index: np.ndarray, batch: int) -> torch.Tensor:
        """Windows ``(B*nW, h, n, n)`` -> ``(B, h, N, N)``, zero across windows."""
        nW, n = index.shape
        h = a.shape[1]
        N = nW * n
        a = a.reshape(batch, nW, h, n, n).permute(0, 2, 1, 3, 4)  # (B, h, nW, n, n)
        idx = torch.as_tensor(index, device=a.device)
        rows = idx[:, :, None].expand(nW, n, n).reshape(-1)
        cols = idx[:, None, :].expand(nW, n, n).reshape(-1)
        full = a.new_zeros(batch, h, N * N)
        full = full.index_copy(2, rows * N + cols, a.reshape(batch, h, -1))
        return full.reshape(batch, h, N, N)

    def _gather(self, full: torch.Tensor, index: np.ndarray) -> torch.Tensor:
        """The inverse of :meth:`_full`: ``(B, h, N, N)`` -> windows ``(B*nW, h, n, n)``."""
        nW, n = index.shape
        B, h, N, _ = full.shape
        idx = torch.as_tensor(index, device=full.device)
        flat = (idx[:, :, None] * N + idx[:, None, :]).reshape(-1)  # (nW*n*n,)
        a = full.reshape(B, h, N * N).index_select(2, flat).reshape(B, h, nW, n, n)
        return a.permute(0, 2, 1, 3, 4).reshape(B * nW, h, n, n)

    def forward_with_attention(self, x: torch.Tensor) -> ModelOutput:
        self._attn.clear()
        self._full_attn.clear()
        was_training = self.model.training
        self.model.eval()
        try:
            feats = self.model.forward_features(x)
            pooled = self.model.forward_head(feats, pre_logits=True)  # (B, C)
            logits = pooled[:, :1] * 0.0 if self.headless else self.model.head.fc(pooled)
        finally:
            self.model.train(was_training)
        full = [self._full_attn[b] for b in range(self.num_layers)]
        self.last_extras = {"windows": dict(self._attn), "features": pooled}
        return ModelOutput(logits, full)

    def rollout(self) -> None:
        raise LibraryError(ROLLOUT_REFUSAL)


def window_attention_map(
    adapter: SwinAdapter,
    windows: dict[tuple[int, int], torch.Tensor],
    *,
    stage: int,
    query: tuple[int, int],
    block: int = -1,
    head: int | None = None,
) -> np.ndarray:
    """One image's window attention of patch ``query`` = (row, col) of ``stage``'s grid.

    Args:
        windows: ``last_extras["windows"]`` of one image's forward pass.
        block: block of the stage (-1 = last); head: one head or ``None`` = mean of heads.

    Returns:
        ``(rows, cols)`` float32 of that stage's grid: the attention probabilities of the
        query over its window's patches (sum 1), zero elsewhere.
    """
    if not -len(adapter.blocks) <= stage < len(adapter.blocks):
        raise LibraryError(f"stage {stage} is out of range (0..{len(adapter.blocks) - 1})")
    stage %= len(adapter.blocks)
    block %= len(adapter.blocks[stage])
    H, W = adapter.stage_grids[stage]
    r, c = query
    if not (0 <= r < H and 0 <= c < W):
        raise LibraryError(f"query patch {query} is outside stage {stage}'s {H}x{W} grid")
    index = adapter._block_index(stage, block)  # (nW, n)
    a = windows[(stage, block)].detach().float()  # (nW, h, n, n) for one image
    if a.shape[0] != index.shape[0]:
        raise LibraryError("window attention of one image expected (batch of 1)")
    wi, pos = map(int, np.argwhere(index == r * W + c)[0])
    rows = a[wi, :, pos, :]  # (h, n)
    row = rows.mean(0) if head is None else rows[head]
    out = np.zeros(H * W, dtype=np.float32)
    out[index[wi]] = row.cpu().numpy()
    return out.reshape(H, W)


def last_stage_relevance(attn: np.ndarray, grads: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Chefer relevance over the last stage, read out for the mean over tokens, ``R - I``.

    Args:
        attn, grads: ``(L, heads, N, N)`` full last-stage matrices and ``dy/dA`` (a capture's
            ``attentions`` and ``gradients(c)``).

    Returns:
        ``(rows, cols)`` float32, divided by its maximum (zeros when nothing is positive).
    """
    a, g = np.asarray(attn, np.float64), np.asarray(grads, np.float64)
    N = a.shape[-1]
    R = np.eye(N)
    for layer in range(a.shape[0]):
        e = np.clip(g[layer] * a[layer], 0, None).mean(axis=0)  # (N, N)
        R = R + e @ R
    row = (R - np.eye(N)).mean(axis=0)  # (N,): relevance of each token to the mean output
    out = row.reshape(grid).astype(np.float32)
    top = float(out.max())
    return out / top if top > 0 else np.zeros_like(out)
