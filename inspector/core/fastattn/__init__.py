"""Fast attention for small heads on the CPU, with ``scaled_dot_product_attention`` elsewhere.

``attention(q, k, v, dropout_p, training)`` is what the model's training forward calls. It
takes the compiled kernel (``attention.cpp``, forward and backward vectorised over keys and
parallel over batch x heads) when it wins: float32 CPU tensors with a head dimension of at most
``MAX_HEAD_DIM``. Everything else (GPU, large heads, other dtypes, double backward) goes to
PyTorch's SDPA. The kernel is compiled once per machine with the system C++ compiler into a
cache folder; where that is impossible the model still trains through SDPA, and says so once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from .build import kernel_status, load_kernel

# Measured on a 2-core EPYC (benchmarks/attention_kernels.py): the kernel beats SDPA's flash
# kernel several times at head dim 1-8 with 65 tokens; PyTorch's kernel catches up as the head
# dimension fills its SIMD lanes.
MAX_HEAD_DIM = 16
MAX_TOKENS = 256

__all__ = [
    "MAX_HEAD_DIM",
    "attention",
    "attention_qkv",
    "disabled",
    "dropout_keep",
    "fast_attention",
    "kernel_status",
    "uses_kernel",
]


def _last_contiguous(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


class _FastAttention(torch.autograd.Function):
    """softmax(q k^T * scale) * keep @ v with ``keep`` the dropout multiplier (or None)."""

    @staticmethod
    def forward(ctx, q, k, v, keep):  # q, k, v (B, H, T, D); keep (B, H, T, T) or None
        B, H, T, D = q.shape
        q, k, v = (_last_contiguous(t) for t in (q, k, v))
        keep = keep.contiguous() if keep is not None else None
        out = q.new_empty((B, H, T, D))
        needs_grad = any(ctx.needs_input_grad[:3])
        # The softmax before dropout, for the backward; not kept when no backward will come.
        probs = q.new_empty((B, H, T, T)) if needs_grad else None
        load_kernel().forward(q, k, v, keep, out, probs, D**-0.5)
        if needs_grad:
            ctx.save_for_backward(q, k, v, keep, out, probs)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout):  # dout (B, H, T, D)
        q, k, v, keep, out, probs = ctx.saved_tensors
        dq, dk, dv = (q.new_empty(q.shape) for _ in range(3))
        dout = _last_contiguous(dout)
        load_kernel().backward(q, k, v, keep, out, probs, dout, dq, dk, dv, q.shape[-1] ** -0.5)
        return dq, dk, dv, None


class _FastAttentionQKV(torch.autograd.Function):
    """The same on the model's fused projection: ``qkv`` (B, T, 3, H, D) in, (B, T, H, D)
    out, gradient (B, T, 3, H, D) back; the kernel reads and writes these layouts through
    strides, so no permute or ``contiguous`` copy is made on either side."""

    @staticmethod
    def forward(ctx, qkv, keep):
        B, T, _, H, D = qkv.shape
        qkv = _last_contiguous(qkv)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # views (B, H, T, D)
        out = qkv.new_empty((B, T, H, D))
        needs_grad = ctx.needs_input_grad[0]
        probs = qkv.new_empty((B, H, T, T)) if needs_grad else None
        load_kernel().forward(q, k, v, keep, out.transpose(1, 2), probs, D**-0.5)
        if needs_grad:
            ctx.save_for_backward(qkv, keep, out, probs)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout):  # dout (B, T, H, D)
        qkv, keep, out, probs = ctx.saved_tensors
        dqkv = qkv.new_empty(qkv.shape)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
        dq, dk, dv = (dqkv[:, :, i].transpose(1, 2) for i in range(3))
        dout = _last_contiguous(dout).transpose(1, 2)
        load_kernel().backward(
            q, k, v, keep, out.transpose(1, 2), probs, dout, dq, dk, dv, qkv.shape[-1] ** -0.5
        )
        return dqkv, None


_enabled = [True]


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """SDPA everywhere inside the block (benchmarks compare the two paths in one process)."""
    previous, _enabled[0] = _enabled[0], False
    try:
        yield
    finally:
        _enabled[0] = previous


def uses_kernel(q: torch.Tensor) -> bool:
    """Whether ``attention`` takes the compiled kernel for queries like ``q`` (B, H, T, D)."""
    return (
        _enabled[0]
        and q.device.type == "cpu"
        and q.dtype == torch.float32
        and q.dim() == 4
        and q.shape[-1] <= MAX_HEAD_DIM
        and q.shape[-2] <= MAX_TOKENS
        and not torch.jit.is_scripting()
        and not torch.compiler.is_compiling()
        and load_kernel() is not None
    )


def fast_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor | None = None
) -> torch.Tensor:
    """The kernel itself; ``keep`` (B, H, T, T) multiplies the probabilities (dropout)."""
    if load_kernel() is None:
        raise RuntimeError(f"the fast attention kernel is unavailable: {kernel_status()}")
    return _FastAttention.apply(q, k, v, keep)


def dropout_keep(shape: torch.Size, p: float, like: torch.Tensor) -> torch.Tensor:
    """The dropout multiplier: 0 with probability ``p``, else ``1 / (1 - p)``; drawn from
    torch's global generator so that seeding makes it reproducible."""
    return (torch.rand(shape, device=like.device) >= p).to(like.dtype) / (1.0 - p)


def attention_qkv(qkv: torch.Tensor, dropout_p: float) -> torch.Tensor:
    """Attention on the fused projection ``qkv`` (B, T, 3, H, D) -> (B, T, H, D), through the
    kernel; the caller checks ``uses_kernel`` first."""
    B, T, _, H, _ = qkv.shape
    keep = dropout_keep((B, H, T, T), dropout_p, qkv) if dropout_p > 0 else None
    return _FastAttentionQKV.apply(qkv, keep)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float) -> torch.Tensor:
    """Multi-head attention output (B, H, T, D); dropout on the probabilities when > 0."""
    if uses_kernel(q):
        B, H, T, _ = q.shape
        keep = dropout_keep((B, H, T, T), dropout_p, q) if dropout_p > 0 else None
        return _FastAttention.apply(q, k, v, keep)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
