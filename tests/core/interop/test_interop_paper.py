"""The seed paper's checkpoint layout (docs/ARCHITECTURE.md section 5) against a direct float64
re-implementation of the authors' architecture written here, independent of our model."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from inspector.core.interop import InteropError, open_checkpoint
from inspector.core.interop.common import PAPER_CLASSES

P, IMG, C = 8, 64, 3
N = (IMG // P) ** 2  # 64 patches, 65 tokens


def _sincos(num: int, d: int) -> torch.Tensor:
    """The Transformer table, written out with math: sin on even channels, cos on odd."""
    rows = [
        [
            math.sin(p / 10000 ** (2 * (i // 2) / d))
            if i % 2 == 0
            else math.cos(p / 10000 ** (2 * (i // 2) / d))
            for i in range(d)
        ]
        for p in range(num)
    ]
    return torch.tensor(rows, dtype=torch.float32)


def paper_state_dict(
    d: int, blocks: int, layernorm: bool, pos: str, seed: int, classes: int = 10
) -> dict[str, torch.Tensor]:
    """A state dict with the authors' exact key names and shapes, random values."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, std=0.5):
        return torch.randn(*shape, generator=g) * std

    sd = {"class_token": rnd(1, 1, d)}
    if pos == "integer":
        sd["positional_embedding"] = torch.arange(N + 1, dtype=torch.float32)[:, None]  # (65, 1)
    elif pos == "sincos":
        sd["positional_embedding"] = _sincos(N + 1, d)[None]  # (1, 65, d)
    else:
        sd["positional_embedding"] = rnd(1, N + 1, d)
    sd["linear_embedding.weight"] = rnd(d, C * P * P, std=0.1)
    sd["linear_embedding.bias"] = rnd(d)
    for i in range(blocks):
        b = f"transformer_blocks.{i}."
        if layernorm:
            for n in ("norm1", "norm2"):
                sd[b + n + ".weight"] = 1 + rnd(d, std=0.2)
                sd[b + n + ".bias"] = rnd(d, std=0.2)
        for n in ("q", "k", "v"):
            sd[b + f"mhsa.{n}_mapping.weight"] = rnd(d, d)
            sd[b + f"mhsa.{n}_mapping.bias"] = rnd(d)
        sd[b + "mlp.0.weight"], sd[b + "mlp.0.bias"] = rnd(4 * d, d), rnd(4 * d)
        sd[b + "mlp.2.weight"], sd[b + "mlp.2.bias"] = rnd(d, 4 * d), rnd(d)
    sd["mlp.0.weight"], sd["mlp.0.bias"] = rnd(classes, d), rnd(classes)
    return sd


def paper_forward(sd, images, heads, residual, layernorm):
    """The authors' model in float64: per-patch (channel, row, column) flattening, separate
    q/k/v mappings split by columns into heads, no output projection, no final norm, softmax
    in the head. Returns (probabilities, [per layer (B, heads, T, T)])."""
    sd = {k: v.double() for k, v in sd.items()}
    x = images.double()
    B, n = x.shape[0], IMG // P
    patches = torch.stack(
        [
            x[:, :, i * P : (i + 1) * P, j * P : (j + 1) * P].reshape(B, -1)
            for i in range(n)
            for j in range(n)
        ],
        dim=1,
    )  # (B, 64, 192)
    d = sd["class_token"].shape[-1]
    tok = patches @ sd["linear_embedding.weight"].T + sd["linear_embedding.bias"]
    tok = torch.cat([sd["class_token"].expand(B, 1, d), tok], dim=1)  # (B, 65, d)
    tok = tok + sd["positional_embedding"]  # (1, 65, d) or (65, 1): added to every channel
    dh = d // heads
    attns = []
    i = 0
    while f"transformer_blocks.{i}.mlp.0.weight" in sd:
        b = f"transformer_blocks.{i}."

        def norm(t, name, b=b):
            if not layernorm:
                return t
            return F.layer_norm(t, (d,), sd[b + name + ".weight"], sd[b + name + ".bias"], 1e-5)

        h = norm(tok, "norm1")
        q, k, v = (
            h @ sd[b + f"mhsa.{m}_mapping.weight"].T + sd[b + f"mhsa.{m}_mapping.bias"]
            for m in ("q", "k", "v")
        )
        outs, layer = [], []
        for hh in range(heads):
            cols = slice(hh * dh, (hh + 1) * dh)
            a = torch.softmax(q[..., cols] @ k[..., cols].transpose(1, 2) / math.sqrt(dh), -1)
            layer.append(a)
            outs.append(a @ v[..., cols])
        attns.append(torch.stack(layer, dim=1))
        mhsa = torch.cat(outs, dim=-1)
        tok = tok + mhsa if residual else mhsa
        h = norm(tok, "norm2")
        mlp = F.gelu(h @ sd[b + "mlp.0.weight"].T + sd[b + "mlp.0.bias"])
        mlp = mlp @ sd[b + "mlp.2.weight"].T + sd[b + "mlp.2.bias"]
        tok = tok + mlp if residual else mlp
        i += 1
    logits = tok[:, 0] @ sd["mlp.0.weight"].T + sd["mlp.0.bias"]
    return torch.softmax(logits, dim=-1), attns


@pytest.mark.parametrize(
    ("name", "d", "blocks", "heads", "layernorm", "residual", "pos"),
    [
        ("4_2_8_True_True.pth", 8, 2, 4, True, True, "sincos"),
        ("2_2_16_True_False_learned.pth", 16, 2, 2, True, False, "learned"),
        ("4_1_8_False_True_integer.pth", 8, 1, 4, False, True, "integer"),
    ],
)
def test_paper_layout_matches_float64_reimplementation(
    tmp_path, name, d, blocks, heads, layernorm, residual, pos
):
    sd = paper_state_dict(d, blocks, layernorm, pos, seed=blocks * 10 + d)
    torch.save(sd, tmp_path / name)
    ckpt = open_checkpoint(tmp_path / name)  # heads and residuals from the file name
    cfg = ckpt.config
    assert (
        cfg.num_heads,
        cfg.depth,
        cfg.hidden_size,
        cfg.layernorm,
        cfg.residual,
        cfg.pos_encoding,
    ) == (heads, blocks, d, layernorm, residual, pos)
    assert not cfg.attn_out_proj and not cfg.final_norm and cfg.output_softmax
    assert ckpt.class_names == list(PAPER_CLASSES)
    assert ckpt.preprocess.mean == (0.0, 0.0, 0.0) and ckpt.preprocess.std == (1.0, 1.0, 1.0)

    images = torch.rand(3, 3, IMG, IMG, generator=torch.Generator().manual_seed(0))
    ref_probs, ref_attn = paper_forward(sd, images, heads, residual, layernorm)
    with torch.no_grad():
        out = ckpt.build_model().forward_with_attention(images)
    torch.testing.assert_close(out.logits.double(), ref_probs, atol=1e-4, rtol=0)
    torch.testing.assert_close(out.logits.sum(-1), torch.ones(3), atol=1e-5, rtol=0)
    for ours, ref in zip(out.attentions, ref_attn, strict=True):
        assert ref.max() > 2.0 / ref.shape[-1]  # not uniform: the comparison can fail
        torch.testing.assert_close(ours.double(), ref, atol=1e-5, rtol=0)


def test_unconventional_name_needs_heads_then_works(tmp_path):
    sd = paper_state_dict(8, 2, True, "learned", seed=3)
    path = tmp_path / "my_model.pth"
    torch.save(sd, path)
    with pytest.raises(InteropError, match=r"heads.*not recoverable.*heads=N"):
        open_checkpoint(path)
    ckpt = open_checkpoint(path, heads=2)
    assert ckpt.config.num_heads == 2 and ckpt.config.residual  # default, with a note
    assert ckpt.config.pos_encoding == "learned"  # random table is not the sincos table
    assert any("residual" in n for n in ckpt.provenance["import_notes"])
    images = torch.rand(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(1))
    ref, _ = paper_forward(sd, images, 2, True, True)
    with torch.no_grad():
        torch.testing.assert_close(ckpt.build_model()(images).double(), ref, atol=1e-4, rtol=0)


def test_sincos_recognised_from_values_without_name(tmp_path):
    torch.save(paper_state_dict(8, 1, True, "sincos", seed=4), tmp_path / "weights.pth")
    ckpt = open_checkpoint(tmp_path / "weights.pth", heads=4, residual=False)
    assert ckpt.config.pos_encoding == "sincos" and not ckpt.config.residual


def test_name_contradicting_weights(tmp_path):
    torch.save(paper_state_dict(8, 2, True, "sincos", seed=5), tmp_path / "4_4_8_True_True.pth")
    with pytest.raises(InteropError, match=r"blocks 4 in the name vs 2 in the weights"):
        open_checkpoint(tmp_path / "4_4_8_True_True.pth")
