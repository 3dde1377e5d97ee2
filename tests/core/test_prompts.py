"""Text-prompted CLIP maps on a small random OpenCLIP model (config registered in the test,
no download): scores equal OpenCLIP's own zero-shot logits, and the gradient of a prompt's
similarity with respect to the attention equals an autograd reference."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

open_clip = pytest.importorskip("open_clip")
pytest.importorskip("timm")

from inspector.core.capture import capture  # noqa: E402
from inspector.core.explain import open_model  # noqa: E402
from inspector.core.load_options import LoadOptions  # noqa: E402
from inspector.core.prompts import explain_prompts, prompted_adapter  # noqa: E402

PROMPTS = ["a photo of a goldfish", "a photo of a dog", "a diagram", "a red car", "snow", "tea"]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("clipcfg")
    cfg = {
        "embed_dim": 64,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 128, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2,
                     "layers": 2},
    }  # fmt: skip
    (d / "Tiny-CLIP-Test.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(d / "Tiny-CLIP-Test.json")
    torch.manual_seed(0)
    model = open_clip.create_model("Tiny-CLIP-Test", pretrained=None).eval()
    path = d / "tiny_clip.pth"
    torch.save(model.state_dict(), path)
    loaded = open_model(path, options=LoadOptions(arch="open_clip:Tiny-CLIP-Test"))
    torch.manual_seed(1)
    x = torch.randn(1, 3, 64, 64)
    return model, loaded, x


def test_scores_equal_open_clip_zero_shot_logits(tiny_clip):
    model, loaded, x = tiny_clip
    cap = capture(prompted_adapter(loaded.checkpoint, PROMPTS), x)
    tok = open_clip.get_tokenizer("Tiny-CLIP-Test")(PROMPTS)
    with torch.no_grad():
        img = F.normalize(model.encode_image(x), dim=-1)
        txt = F.normalize(model.encode_text(tok), dim=-1)
        expected = model.logit_scale.exp() * img @ txt.T
    assert torch.allclose(cap.logits, expected[0], atol=1e-4)
    assert torch.allclose(cap.probabilities, expected[0].softmax(-1), atol=1e-4)


class _Ones(nn.Module):
    def __init__(self, store: list) -> None:
        super().__init__()
        self.store = store

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        m = torch.ones_like(a, requires_grad=True)
        self.store.append(m)
        return a * m


def test_similarity_gradient_equals_autograd_reference(tiny_clip):
    model, loaded, x = tiny_clip
    adapter = prompted_adapter(loaded.checkpoint, PROMPTS)
    cap = capture(adapter, x)
    k = 1
    # Reference: a copy of the image tower with each attention multiplied by ones M;
    # d s_k / d M = A * d s_k / d A, s_k = scale * cos(image, text_k) from OpenCLIP's text.
    vit = copy.deepcopy(loaded.model.model)
    store: list[torch.Tensor] = []
    for blk in vit.blocks:
        blk.attn.attn_drop = _Ones(store)
    tok = open_clip.get_tokenizer("Tiny-CLIP-Test")([PROMPTS[k]])
    with torch.no_grad():
        txt = F.normalize(model.encode_text(tok), dim=-1)[0]
    s = model.logit_scale.exp().detach() * F.normalize(vit(x), dim=-1)[0] @ txt
    expected = torch.cat(torch.autograd.grad(s, store))  # (L, h, T, T)
    got = cap.gradients(k) * cap.attentions
    assert float(expected.abs().max()) > 0
    assert torch.allclose(got, expected, atol=1e-6 * float(expected.abs().max()) + 1e-9)


def test_several_prompts_give_a_zero_shot_top5_and_a_map_each(tiny_clip):
    _, loaded, x = tiny_clip
    res = explain_prompts(loaded.checkpoint, x, PROMPTS, method="relevance")
    assert len(res.top) == 5
    assert [p for p, _ in res.top] == [PROMPTS[i] for i in res.scores.argsort()[::-1][:5]]
    assert set(res.maps) == set(PROMPTS)
    assert all(m.shape == (4, 4) for m in res.maps.values())
    assert not all((res.maps[PROMPTS[0]] == m).all() for m in res.maps.values())


def test_cli_explain_with_prompts(tiny_clip, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from inspector.cli import main

    _, loaded, _ = tiny_clip
    img = tmp_path / "fish.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 90, 3), np.uint8)).save(img)
    src = loaded.checkpoint.provenance["source_file"]
    argv = ["explain", "--checkpoint", src, "--arch", "open_clip:Tiny-CLIP-Test", "--image",
            str(img), "--out", str(tmp_path / "out"), "--method", "relevance"]  # fmt: skip
    for p in PROMPTS[:3]:
        argv += ["--prompt", p]
    assert main(argv) == 0
    record = json.loads((tmp_path / "out" / "fish_prompts.json").read_text())
    assert [e["prompt"] for e in record["prompts"]] == PROMPTS[:3]
    assert len(record["zero_shot_top5"]) == 3
    assert np.load(tmp_path / "out" / "fish_prompt2.npy").shape == (4, 4)
    assert "fish.png:" in capsys.readouterr().out
    # Without its model name: one line saying what to give, no traceback.
    argv2 = ["explain", "--checkpoint", src, "--image", str(img), "--out", str(tmp_path / "o2"),
             "--prompt", "x"]  # fmt: skip
    assert main(argv2) == 2
    assert "--arch open_clip:NAME" in capsys.readouterr().err


def test_prompts_need_a_text_tower():
    from types import SimpleNamespace

    from inspector.core.prompts import PromptError

    with pytest.raises(PromptError, match="text tower"):
        prompted_adapter(SimpleNamespace(text=None, adapter=None), ["a dog"])
