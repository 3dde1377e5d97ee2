"""The Vision Transformer: one readable file, timm-like parameter names.

Names follow timm (``cls_token``, ``pos_embed``, ``patch_embed.proj``, ``blocks.N.attn.qkv``,
``blocks.N.attn.proj``, ``blocks.N.mlp.fc1/fc2``, ``norm``, ``head``) so that users recognise
them and the importers map foreign checkpoints onto this one class.

Two forward paths share the same weights:
- ``forward(x)`` is the fast training path (``scaled_dot_product_attention``), logits only;
- ``forward_with_attention(x)`` materialises every layer's attention probabilities
  ``[B, heads, T, T]`` and returns them with the logits; they stay in the autograd graph, so
  ``torch.autograd.grad(logits[:, c].sum(), attentions)`` gives ``dy_c/dA`` for gradient methods.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from . import fastattn
from .config import ViTConfig


def sincos_table(num_positions: int, dim: int) -> torch.Tensor:
    """The Transformer's 1-D sine/cosine table, ``[num_positions, dim]`` (float32).

    angle(pos, i) = pos / 10000 ** (2 * (i // 2) / dim); sin on even channels, cos on odd.
    """
    # Explicitly on the CPU: under ``with torch.device("meta")`` (fast model construction for
    # loading) a meta arange would import sympy, seconds for nothing; the buffer is replaced
    # by the checkpoint's tensor anyway.
    pos = torch.arange(num_positions, dtype=torch.float64, device="cpu")[:, None]  # (P, 1)
    i = torch.arange(dim, dtype=torch.float64, device="cpu")[None, :]  # (1, D)
    angle = pos / torch.pow(10000.0, 2 * torch.div(i, 2, rounding_mode="floor") / dim)
    table = torch.where(i % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.float()


class ModelOutput(NamedTuple):
    logits: torch.Tensor  # (B, num_classes); probabilities for a model ending in a softmax
    attentions: list[torch.Tensor]  # per layer (B, heads, T, T), rows sum to 1
    # (B, num_classes): the input to a final softmax, for models whose output is one; None else.
    pre_softmax: torch.Tensor | None = None


class PatchEmbed(nn.Module):
    """Non-overlapping patches to tokens. A stride-P convolution equals a linear map of each
    patch flattened in (channel, row, column) order, which is the paper's layout."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cfg.in_channels, cfg.hidden_size, cfg.patch_size, cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)  # (B, D, H/P, W/P)
        return x.flatten(2).transpose(1, 2)  # (B, N, D), patches in row-major order


class Attention(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.num_heads = cfg.num_heads
        self.head_dim = cfg.head_dim
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=cfg.qkv_bias)
        self.attn_drop = nn.Dropout(cfg.attn_dropout)
        # The paper's model has no output projection after attention; library ViTs do.
        self.proj = (
            nn.Linear(cfg.hidden_size, cfg.hidden_size) if cfg.attn_out_proj else nn.Identity()
        )
        self.proj_drop = nn.Dropout(cfg.dropout)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, D = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, nh, T, hd)
        return q, k, v

    def _merge(self, out: torch.Tensor) -> torch.Tensor:
        B, _, T, _ = out.shape
        out = out.transpose(1, 2).reshape(B, T, self.num_heads * self.head_dim)  # (B, T, D)
        return self.proj_drop(self.proj(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        p = self.attn_drop.p if self.training else 0.0
        if self.training or not torch.is_grad_enabled():
            # Training and plain inference: the compiled small-head CPU kernel where it wins
            # (core/fastattn), reading the fused projection in place. Gradients through an
            # eval-mode forward (saliency) keep SDPA, which also supports double backward.
            qkv = self.qkv(x).reshape(B, T, 3, self.num_heads, self.head_dim)
            if fastattn.uses_kernel(qkv[:, :, 0].transpose(1, 2)):
                out = fastattn.attention_qkv(qkv, p)  # (B, T, nh, hd)
                return self.proj_drop(self.proj(out.reshape(B, T, -1)))
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, nh, T, hd)
        else:
            q, k, v = self._qkv(x)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (B, nh, T, hd)
        return self._merge(out)

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v = self._qkv(x)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # (B, nh, T, T)
        out = self.attn_drop(attn) @ v  # (B, nh, T, hd)
        return self._merge(out), attn


class Mlp(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.mlp_dim)
        if cfg.activation == "relu":
            self.act: nn.Module = nn.ReLU()
        else:
            self.act = nn.GELU(approximate="tanh" if cfg.activation == "gelu_tanh" else "none")
        self.fc2 = nn.Linear(cfg.mlp_dim, cfg.hidden_size)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def _norm(cfg: ViTConfig, enabled: bool) -> nn.Module:
    return nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps) if enabled else nn.Identity()


class Block(nn.Module):
    """Pre-norm encoder block: ``x + MHSA(LN(x))`` then ``x + MLP(LN(x))``; without residuals
    the sums are dropped, without LayerNorm the norms are identities."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.residual = cfg.residual
        self.norm1 = _norm(cfg, cfg.layernorm)
        self.attn = Attention(cfg)
        self.norm2 = _norm(cfg, cfg.layernorm)
        self.mlp = Mlp(cfg)

    def _add(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y if self.residual else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._add(x, self.attn(self.norm1(x)))
        return self._add(x, self.mlp(self.norm2(x)))

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, attn = self.attn.forward_with_attention(self.norm1(x))
        x = self._add(x, y)
        return self._add(x, self.mlp(self.norm2(x))), attn


class VisionTransformer(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        D, T = cfg.hidden_size, cfg.num_tokens
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, D)) if cfg.distill_token else None
        if cfg.pos_encoding == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, T, D))
        elif cfg.pos_encoding == "sincos":
            # Fixed, not trained; kept in the state dict so a checkpoint is self-contained.
            self.register_buffer("pos_embed", sincos_table(T, D)[None])  # (1, T, D)
        elif cfg.pos_encoding == "integer":
            # The token index added to every channel (the paper's (T, 1) table).
            self.register_buffer(
                "pos_embed", torch.arange(T, dtype=torch.float32, device="cpu")[:, None]
            )
        else:
            self.pos_embed = None
        self.pos_drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = _norm(cfg, cfg.final_norm)
        self.head = nn.Linear(D, cfg.num_classes)
        self.head_dist = nn.Linear(D, cfg.num_classes) if cfg.distill_token else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """timm-style initialisation: truncated normal (std 0.02) for tokens and linears."""
        for name, p in self.named_parameters():
            if name in ("cls_token", "dist_token", "pos_embed"):
                nn.init.trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # The patch projection keeps PyTorch's default (fan-in uniform), like timm's conv.
        fan_in = self.patch_embed.proj.in_channels * self.patch_embed.proj.kernel_size[0] ** 2
        bound = 1 / math.sqrt(fan_in)
        nn.init.uniform_(self.patch_embed.proj.weight, -bound, bound)
        nn.init.uniform_(self.patch_embed.proj.bias, -bound, bound)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` to tokens ``(B, T, D)`` with positions added."""
        if x.shape[-2:] != (self.cfg.image_size, self.cfg.image_size):
            raise ValueError(
                f"expected {self.cfg.image_size}x{self.cfg.image_size} input, got "
                f"{tuple(x.shape[-2:])}"
            )
        tokens = self.patch_embed(x)  # (B, N, D)
        B = tokens.shape[0]
        prefix = [self.cls_token.expand(B, -1, -1)]
        if self.dist_token is not None:
            prefix.append(self.dist_token.expand(B, -1, -1))
        tokens = torch.cat([*prefix, tokens], dim=1)  # (B, T, D)
        if self.pos_embed is not None:
            tokens = tokens + self.pos_embed  # (1, T, D) or (T, 1) broadcast
        return self.pos_drop(tokens)

    def head_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Final tokens ``(B, T, D)`` to the head's scores ``(B, K)``, before any output softmax."""
        x = self.norm(x)
        logits = self.head(x[:, 0])
        if self.head_dist is not None:
            # DeiT-distilled inference: mean of the class and distillation heads.
            logits = (logits + self.head_dist(x[:, 1])) / 2
        return logits

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Final tokens ``(B, T, D)`` to logits (or probabilities with ``output_softmax``)."""
        logits = self.head_logits(x)
        return logits.softmax(dim=-1) if self.cfg.output_softmax else logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)
        return self.classify(x)

    def forward_with_attention(self, x: torch.Tensor) -> ModelOutput:
        """Logits plus every layer's attention probabilities, each ``(B, heads, T, T)``.

        The attentions are part of the autograd graph (not detached); wrap the call in
        ``torch.no_grad()`` when no gradients are needed.
        """
        x = self.embed(x)
        attentions = []
        for block in self.blocks:
            x, attn = block.forward_with_attention(x)
            attentions.append(attn)
        logits = self.head_logits(x)
        if self.cfg.output_softmax:
            return ModelOutput(logits.softmax(dim=-1), attentions, pre_softmax=logits)
        return ModelOutput(logits, attentions)


def build_model(cfg: ViTConfig) -> VisionTransformer:
    return VisionTransformer(cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
