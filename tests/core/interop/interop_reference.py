"""Reference helpers for the importer tests (imported by the test files next to this one).

The reference attention probabilities come from the ORIGINAL model: forward hooks capture the
query and key projections it actually computed, and the probabilities are recomputed from them
here in float64, ``softmax(q k^T / sqrt(head_dim))`` -- none of our code is involved.
"""

from __future__ import annotations

import torch
from torch import nn


def perturb_(model: nn.Module, seed: int, std: float = 0.2) -> nn.Module:
    """Add seeded noise to every parameter so that attention is far from uniform and biases
    and LayerNorm affine terms are non-trivial (random init leaves them 0 / 1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * std)
    return model.eval()


def probs_from_qk(q: torch.Tensor, k: torch.Tensor, heads: int) -> torch.Tensor:
    """``q, k`` of shape ``(B, T, D)`` -> attention probabilities ``(B, heads, T, T)``,
    float64, heads taking consecutive ``D / heads`` columns."""
    B, T, D = q.shape
    hd = D // heads
    q = q.double().reshape(B, T, heads, hd).transpose(1, 2)  # (B, nh, T, hd)
    k = k.double().reshape(B, T, heads, hd).transpose(1, 2)
    return torch.softmax(q @ k.transpose(-2, -1) / hd**0.5, dim=-1)  # (B, nh, T, T)


class QKRecorder:
    """Collects ``(q, k)`` per layer through hooks that the caller registers."""

    def __init__(self) -> None:
        self.q: dict[int, torch.Tensor] = {}
        self.k: dict[int, torch.Tensor] = {}
        self.handles: list = []

    def fused_qkv(self, layer: int, module: nn.Module) -> None:
        """Hook a module whose OUTPUT is ``[q | k | v]`` concatenated on the last axis."""

        def hook(_m, _inp, out):
            D = out.shape[-1] // 3
            self.q[layer], self.k[layer] = out[..., :D].detach(), out[..., D : 2 * D].detach()

        self.handles.append(module.register_forward_hook(hook))

    def separate(self, layer: int, q_module: nn.Module, k_module: nn.Module) -> None:
        """Hook separate query and key projection modules (their outputs)."""

        def hq(_m, _inp, out):
            self.q[layer] = out.detach()

        def hk(_m, _inp, out):
            self.k[layer] = out.detach()

        self.handles += [q_module.register_forward_hook(hq), k_module.register_forward_hook(hk)]

    def probs(self, heads: int) -> list[torch.Tensor]:
        return [probs_from_qk(self.q[i], self.k[i], heads) for i in sorted(self.q)]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def assert_equivalent(
    ckpt, logits_ref: torch.Tensor, probs_ref: list[torch.Tensor], images: torch.Tensor
) -> None:
    """Our imported model reproduces the original's logits (1e-4) and every layer's attention
    probabilities (1e-5) on ``images``; the reference attention is checked to be non-uniform so
    that the comparison can fail."""
    model = ckpt.build_model()
    with torch.no_grad():
        out = model.forward_with_attention(images)
        fast = model(images)
    assert out.logits.shape == logits_ref.shape
    torch.testing.assert_close(out.logits, logits_ref.float(), atol=1e-4, rtol=0)
    torch.testing.assert_close(fast, logits_ref.float(), atol=1e-4, rtol=0)
    assert len(out.attentions) == len(probs_ref) == ckpt.config.depth
    for layer, (ours, ref) in enumerate(zip(out.attentions, probs_ref, strict=True)):
        T = ref.shape[-1]
        assert ref.max() > 2.0 / T, f"layer {layer}: reference attention is nearly uniform"
        torch.testing.assert_close(
            ours.double(), ref, atol=1e-5, rtol=0, msg=lambda m, i=layer: f"layer {i}: {m}"
        )
