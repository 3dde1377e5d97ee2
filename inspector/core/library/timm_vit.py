"""timm's own ViT-like modules behind the capture protocol: VisionTransformer (DINOv2 with and
without registers, DeiT III, CLIP, SigLIP, reg-GAP), Eva (EVA-02, RoPE) and Beit (relative
position bias).

The module runs unchanged except that every attention module's ``fused_attn`` is switched off:
timm then computes ``softmax(q k^T * scale [+ bias])`` explicitly and passes it through
``attn_drop`` (an ``nn.Dropout``, the identity in eval mode). A forward hook on ``attn_drop``
records its output: the very tensor that multiplies ``v``, so it stays in the autograd graph
and ``dy/dA`` taken on it is the true gradient. The SigLIP attention-pool head
(``AttentionPoolLatent``) has no ``attn_drop``; its ``q_norm`` / ``k_norm`` outputs are
hooked and its attention recomputed from them with the module's own scale (the same ops).
Block outputs are hooked too, for the token-norm view (their L2 norm per token, detached).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..model import ModelOutput
from ..token_layout import TokenLayout
from . import LibraryError

__all__ = ["TimmViTAdapter", "layout_of"]

_POOLING = {"token": "class", "avg": "mean", "map": "attention-pool", "": "class"}


def layout_of(model: nn.Module, grid: tuple[int, int]) -> TokenLayout:
    """The token layout of a timm VisionTransformer / Eva / Beit from its attributes."""
    has_class = getattr(model, "cls_token", None) is not None
    registers = int(getattr(model, "num_reg_tokens", 0) or 0)
    distilled = getattr(model, "dist_token", None) is not None
    pool = getattr(model, "global_pool", "token")
    if pool not in _POOLING:
        raise LibraryError(f"timm global_pool {pool!r} is not supported (token, avg, map are)")
    pooling = _POOLING[pool]
    if pooling == "class" and not has_class:
        pooling = "mean"
    layout = TokenLayout.standard(
        grid, class_token=has_class, distillation=distilled, registers=registers, pooling=pooling
    )
    if layout.num_prefix_tokens != int(getattr(model, "num_prefix_tokens", 1)):
        raise LibraryError(
            f"token layout {layout.describe()} disagrees with timm's num_prefix_tokens "
            f"{model.num_prefix_tokens}"
        )
    return layout


class TimmViTAdapter:
    """An :class:`~inspector.core.capture.AttentionModel` over a timm ViT-like module.

    Attributes (besides the protocol's): ``token_layout``; ``last_extras`` after each forward:
    ``pool_attention`` ``(B, T)`` (attention-pool models: the pool query's attention, heads
    averaged), ``token_norms`` ``(B, L, T)`` (each block output's L2 norm per token),
    ``features`` ``(B, D)`` (the pooled, pre-head embedding).
    """

    residual = True
    outputs_probabilities = False

    def __init__(self, model: nn.Module, *, patch_size: int, image_size: int) -> None:
        blocks = getattr(model, "blocks", None)
        if blocks is None or not len(blocks):
            raise LibraryError(f"{type(model).__name__} has no transformer blocks")
        self.model = model.eval()
        for m in model.modules():
            if hasattr(m, "fused_attn"):
                m.fused_attn = False  # explicit softmax(q k^T) path, seen by attn_drop
        self.patch_size = int(patch_size)
        self.image_size = int(image_size)
        g = self.image_size // self.patch_size
        self.grid_size: tuple[int, int] = (g, g)
        self.token_layout = layout_of(model, self.grid_size)
        self.num_prefix_tokens = self.token_layout.num_prefix_tokens
        self.num_layers = len(blocks)
        self.num_heads = int(blocks[0].attn.num_heads)
        self.hidden_size = int(getattr(model, "embed_dim", 0) or model.num_features)
        self.num_classes = int(getattr(model, "num_classes", 0) or 0)
        self.headless = self.num_classes == 0
        self.last_extras: dict[str, torch.Tensor] = {}
        self._attn: list[torch.Tensor | None] = [None] * self.num_layers
        self._norms: list[torch.Tensor | None] = [None] * self.num_layers
        self._pool_qk: dict[str, torch.Tensor] = {}
        self._features: torch.Tensor | None = None
        for i, block in enumerate(blocks):
            drop = getattr(block.attn, "attn_drop", None)
            if drop is None:
                name = type(block.attn).__name__
                raise LibraryError(f"block {i}'s attention ({name}) has no attn_drop")
            drop.register_forward_hook(self._attn_hook(i))
            block.register_forward_hook(self._norm_hook(i))
        pool = getattr(model, "attn_pool", None)
        self._pool = pool if self.token_layout.pooling == "attention-pool" else None
        if self._pool is not None:
            pool.q_norm.register_forward_hook(self._qk_hook("q"))
            pool.k_norm.register_forward_hook(self._qk_hook("k"))

    # Hooks: each writes into this forward's slots; the adapter reads them afterwards.
    def _attn_hook(self, i: int):
        def hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
            self._attn[i] = out  # (B, heads, T, T), in the graph

        return hook

    def _norm_hook(self, i: int):
        def hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
            self._norms[i] = out.detach().norm(dim=-1)  # (B, T)

        return hook

    def _qk_hook(self, which: str):
        def hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
            self._pool_qk[which] = out  # (B, heads, latent | T, head_dim)

        return hook

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def pooled_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled pre-head embedding ``(B, D)`` (for CLIP/SigLIP image-text scores)."""
        feats = self.model.forward_features(x)
        return self.model.forward_head(feats, pre_logits=True)

    def forward_with_attention(self, x: torch.Tensor) -> ModelOutput:
        """``x`` ``(B, 3, H, W)`` -> logits ``(B, K)`` and per-layer ``(B, heads, T, T)``."""
        self._attn = [None] * self.num_layers
        self._pool_qk.clear()
        was_training = self.model.training
        self.model.eval()
        try:
            feats = self.model.forward_features(x)  # (B, T, D)
            pooled = self.model.forward_head(feats, pre_logits=True)  # (B, D)
            logits = pooled[:, :1] * 0.0 if self.headless else self.model.get_classifier()(pooled)
        finally:
            self.model.train(was_training)
        missing = [i for i, a in enumerate(self._attn) if a is None]
        if missing:
            raise LibraryError(f"no attention was recorded for block(s) {missing}")
        extras: dict[str, torch.Tensor] = {
            "token_norms": torch.stack([n for n in self._norms if n is not None], dim=1),
            "features": pooled,
        }
        if self._pool is not None:
            q, k = self._pool_qk["q"], self._pool_qk["k"]
            a = ((q * self._pool.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # (B,h,1,T)
            extras["pool_attention"] = a.mean(dim=1)[:, 0]  # (B, T), heads averaged
        self.last_extras = extras
        return ModelOutput(logits, list(self._attn))  # type: ignore[arg-type]
