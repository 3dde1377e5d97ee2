"""The compiled small-head attention kernel against PyTorch's own attention.

References: ``F.scaled_dot_product_attention`` (no dropout) and SDPA's math path with an
explicit dropout mask (``aten._scaled_dot_product_attention_math``), in float32 and float64.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from inspector.core import fastattn
from inspector.core.config import preset
from inspector.core.model import VisionTransformer

REPO = Path(__file__).resolve().parents[2]

needs_kernel = pytest.mark.skipif(
    fastattn.build.load_kernel() is None,
    reason=f"attention kernel unavailable here: {fastattn.kernel_status()}",
)

SHAPES = [(128, 4, 65, 2), (3, 8, 65, 1), (2, 4, 17, 8), (1, 1, 5, 1), (2, 2, 65, 16), (4, 3, 9, 3)]


def _qkv(shape, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=dtype).requires_grad_() for _ in range(3)]


def _sdpa_math(q, k, v, p, keep_bool):
    # SDPA's reference implementation, dropping exactly the entries of ``keep_bool`` == False.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "dropout mask should only be used for testing"
        out, _ = torch.ops.aten._scaled_dot_product_attention_math(
            q, k, v, None, p, False, keep_bool
        )
    return out


@needs_kernel
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_sdpa_without_dropout(shape):
    q, k, v = _qkv(shape, 0)
    grad = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    ref = F.scaled_dot_product_attention(q, k, v)
    ref_grads = torch.autograd.grad(ref, (q, k, v), grad)
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref64 = F.scaled_dot_product_attention(q64, k64, v64)
    ref64_grads = torch.autograd.grad(ref64, (q64, k64, v64), grad.double())

    out = fastattn.fast_attention(q, k, v)
    grads = torch.autograd.grad(out, (q, k, v), grad)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.double(), ref64, rtol=0, atol=1e-5)
    for mine, theirs, exact in zip(grads, ref_grads, ref64_grads, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-5)
        torch.testing.assert_close(mine.double(), exact, rtol=0, atol=1e-5)


@needs_kernel
@pytest.mark.parametrize("shape", SHAPES[:4])
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_matches_sdpa_with_the_same_dropout_mask(shape, p):
    q, k, v = _qkv(shape, 2)
    B, H, T, _ = shape
    keep_bool = torch.rand((B, H, T, T), generator=torch.Generator().manual_seed(3)) >= p
    grad = torch.randn(shape, generator=torch.Generator().manual_seed(4))
    ref = _sdpa_math(q, k, v, p, keep_bool)
    ref_grads = torch.autograd.grad(ref, (q, k, v), grad)

    out = fastattn.fast_attention(q, k, v, keep_bool.float() / (1 - p))
    grads = torch.autograd.grad(out, (q, k, v), grad)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    for mine, theirs in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-5)


@needs_kernel
def test_dropout_mask_is_drawn_from_the_seeded_generator():
    q, k, v = _qkv((2, 2, 9, 2), 5)
    torch.manual_seed(7)
    first = fastattn.attention(q, k, v, 0.3)
    torch.manual_seed(7)
    again = fastattn.attention(q, k, v, 0.3)
    torch.manual_seed(7)
    keep = fastattn.dropout_keep((2, 2, 9, 9), 0.3, q)
    assert torch.equal(first, again)
    torch.testing.assert_close(first, _sdpa_math(q, k, v, 0.3, keep > 0), rtol=0, atol=1e-5)
    assert 0 < (keep == 0).float().mean() < 1


def test_falls_back_to_sdpa_where_the_kernel_does_not_win():
    big_heads = torch.zeros(1, 2, 5, fastattn.MAX_HEAD_DIM + 1)
    doubles = torch.zeros(1, 2, 5, 2, dtype=torch.float64)
    assert not fastattn.uses_kernel(big_heads)
    assert not fastattn.uses_kernel(doubles)
    with fastattn.disabled():
        assert not fastattn.uses_kernel(torch.zeros(1, 2, 5, 2))
    q, k, v = _qkv((1, 2, 5, 2), 6, torch.float64)
    torch.testing.assert_close(
        fastattn.attention(q, k, v, 0.0), F.scaled_dot_product_attention(q, k, v)
    )


@needs_kernel
def test_model_training_step_matches_the_sdpa_path():
    """The whole baseline: logits and every parameter gradient agree with the SDPA model."""
    torch.manual_seed(0)
    model = VisionTransformer(preset("baseline"))
    model.train()
    x = torch.randn(16, 3, 64, 64, generator=torch.Generator().manual_seed(8))
    y = torch.arange(16) % 10

    def step():
        model.zero_grad()
        logits = model(x)
        F.cross_entropy(logits, y).backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters()]

    assert fastattn.uses_kernel(torch.zeros(16, 4, 65, 2))
    logits, grads = step()
    with fastattn.disabled():
        ref_logits, ref_grads = step()
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-5)
    for mine, theirs in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)
    # forward_with_attention is untouched and gives the same logits in eval mode.
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            model(x), model.forward_with_attention(x).logits, rtol=0, atol=1e-5
        )


def test_without_a_compiler_training_still_works_and_says_so_once(tmp_path):
    """A machine where the kernel cannot build: SDPA is used and one warning line is logged."""
    code = (
        "import torch\n"
        "from inspector.core import fastattn\n"
        "from inspector.core.config import preset\n"
        "from inspector.core.model import VisionTransformer\n"
        "m = VisionTransformer(preset('baseline')); m.train()\n"
        "for _ in range(3):\n"
        "    m(torch.randn(4, 3, 64, 64)).sum().backward()\n"
        "assert not fastattn.uses_kernel(torch.zeros(4, 4, 65, 2))\n"
        "print('trained;', fastattn.kernel_status())\n"
    )
    env = {
        **os.environ,
        "CXX": str(tmp_path / "no-such-compiler"),
        "VIT_INSPECTOR_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "trained; no C++ compiler" in done.stdout
    assert done.stderr.count("fast CPU attention unavailable") == 1, done.stderr


@needs_kernel
@pytest.mark.parametrize("p", [0.0, 0.25])
def test_fused_qkv_layout_matches_sdpa(p):
    """The model's path: fused projection (B, T, 3, H, D) in, (B, T, H, D) out, no copies."""
    B, T, H, D = 3, 65, 4, 2
    qkv = torch.randn(B, T, 3, H, D, generator=torch.Generator().manual_seed(9)).requires_grad_()
    grad = torch.randn(B, T, H, D, generator=torch.Generator().manual_seed(10))
    torch.manual_seed(11)
    out = fastattn.attention_qkv(qkv, p)
    (dqkv,) = torch.autograd.grad(out, qkv, grad)
    torch.manual_seed(11)
    keep = fastattn.dropout_keep((B, H, T, T), p, qkv) if p else torch.ones(B, H, T, T)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    ref = _sdpa_math(q, k, v, p, keep > 0).transpose(1, 2)
    (ref_dqkv,) = torch.autograd.grad(ref, qkv, grad)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(dqkv, ref_dqkv, rtol=0, atol=1e-5)
