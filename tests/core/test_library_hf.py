"""Hugging Face Dinov2 (with registers), CLIP and SigLIP folders, random weights, checked
against transformers itself: predictions of an independently loaded (SDPA) model, attention
recomputed in float64 from the q/k projections, and ``dy/dA`` from the identity ``O = A V``
(``dy/dA_h = dy/dO_h V_h^T``, with ``dy/dO`` by autograd on the attention outputs)."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from inspector.core.capture import capture  # noqa: E402
from inspector.core.explain import open_model  # noqa: E402

SMALL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
CASES = {
    "dinov2-cls": ("Dinov2Config", "Dinov2ForImageClassification", {"num_labels": 5}, 56),
    "dinov2-reg": ("Dinov2WithRegistersConfig", "Dinov2WithRegistersForImageClassification",
                   {"num_register_tokens": 4, "num_labels": 5}, 56),
    "clip": ("CLIPVisionConfig", "CLIPVisionModel", {}, 56),
    "siglip": ("SiglipVisionConfig", "SiglipVisionModel", {}, 56),
}  # fmt: skip


@pytest.fixture(scope="module", params=list(CASES))
def hf(request, tmp_path_factory):
    cfg_name, cls_name, extra, side = CASES[request.param]
    cfg = getattr(transformers, cfg_name)(image_size=side, patch_size=14, **SMALL, **extra)
    torch.manual_seed(0)
    model = getattr(transformers, cls_name)(cfg).eval()
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    loaded = open_model(folder, options=None)
    ref = getattr(transformers, cls_name).from_pretrained(folder).eval()  # default attention
    torch.manual_seed(1)
    side = loaded.checkpoint.config.image_size
    return request.param, loaded, ref, torch.randn(1, 3, side, side)


def _run_ref(ref, x, grad_of=None):
    """Forward of the reference with hooks: q, k, v projections and attention outputs."""
    rec: dict[str, list[torch.Tensor]] = {"q": [], "k": [], "v": [], "o": []}
    hooks = []
    for name, m in ref.named_modules():
        for key, suffix in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj")):
            if name.endswith(suffix):
                hooks.append(m.register_forward_hook(lambda _m, _i, o, k=key: rec[k].append(o)))
        if name.endswith(("attention.o_proj", "self_attn.out_proj")):
            hooks.append(m.register_forward_pre_hook(lambda _m, a: rec["o"].append(a[0])))
    kwargs = {} if "Dinov2" in type(ref).__name__ else {"interpolate_pos_encoding": True}
    out = ref(pixel_values=x, **kwargs)
    for h in hooks:
        h.remove()
    return out, rec


def _heads(t: torch.Tensor, h: int) -> torch.Tensor:
    B, T, D = t.shape
    return t.reshape(B, T, h, D // h).transpose(1, 2)  # (B, h, T, dh)


def test_opens_with_the_layout(hf):
    case, loaded, _, _ = hf
    layout = loaded.checkpoint.token_layout
    expected = {
        "dinov2-cls": (("class",), "class"),
        "dinov2-reg": (("class",) + ("register",) * 4, "class"),
        "clip": (("class",), "class"),
        "siglip": ((), "attention-pool"),
    }[case]
    assert (layout.prefix, layout.pooling) == expected
    # Dinov2 runs at 224 px by default (patch 14: 16x16), the others at their size.
    assert layout.grid == ((16, 16) if "dinov2" in case else (4, 4))


def test_predictions_equal_transformers_forward(hf):
    case, loaded, ref, x = hf
    cap = capture(loaded.model, x)
    with torch.no_grad():
        out, _ = _run_ref(ref, x)
    if "dinov2" in case:
        assert torch.allclose(cap.probabilities, out.logits.softmax(-1)[0], atol=1e-4)
    else:  # CLIP / SigLIP towers: the embedding is the output
        assert torch.allclose(cap.logits, out.pooler_output[0], atol=1e-4)
        assert torch.allclose(cap.extras["features"], out.pooler_output[0], atol=1e-4)


def test_attention_equals_explicit_recomputation(hf):
    _, loaded, ref, x = hf
    cap = capture(loaded.model, x)
    h = loaded.checkpoint.config.num_heads
    with torch.no_grad():
        _, rec = _run_ref(ref, x)
    expected = []
    for q, k in zip(rec["q"], rec["k"], strict=True):
        q64, k64 = _heads(q.double(), h), _heads(k.double(), h)
        expected.append(((q64 @ k64.transpose(-2, -1)) * q64.shape[-1] ** -0.5).softmax(-1))
    assert torch.allclose(cap.attentions, torch.cat(expected).float(), atol=1e-5)


def test_gradient_equals_the_value_identity_reference(hf):
    case, loaded, ref, x = hf
    cap = capture(loaded.model, x)
    c = cap.predicted_class
    out, rec = _run_ref(ref, x)
    h = loaded.checkpoint.config.num_heads
    score = out.logits[0, c] if "dinov2" in case else out.pooler_output[0, c]
    d_o = torch.autograd.grad(score, rec["o"])
    expected = torch.cat(
        [_heads(g, h) @ _heads(v, h).transpose(-2, -1) for g, v in zip(d_o, rec["v"], strict=True)]
    ).detach()  # (L, h, T, T)
    got = cap.gradients(c)
    assert torch.allclose(got, expected, atol=1e-5 * float(expected.abs().max()) + 1e-8)
