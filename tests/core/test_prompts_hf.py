"""Text prompts for Hugging Face CLIPModel / SiglipModel folders, random weights and a word-level
tokenizer saved in the test's folder (no network): the scores equal the model's own
``logits_per_image``, and the gradient of a prompt's score with respect to the image tower's
attention equals autograd through transformers' own full (image + text) forward."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from inspector.core.capture import capture  # noqa: E402
from inspector.core.explain import open_model  # noqa: E402
from inspector.core.prompts import PromptError, explain_prompts, prompted_adapter  # noqa: E402
from inspector.core.saliency import MapSettings  # noqa: E402

PROMPTS = ["a photo of a goldfish", "a photo of a dog", "a diagram", "a red car", "snow", "tea"]
WORDS = sorted({w for p in PROMPTS for w in p.split()} | {"cat", "the"})
VOCAB = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
EOS = len(VOCAB)  # the highest id: CLIP's tower finds it either way it looks
VOCAB["[EOS]"] = EOS
MAX_LEN = 12
VISION = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
              image_size=56, patch_size=14)  # fmt: skip
TEXT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            vocab_size=EOS + 1, max_position_embeddings=MAX_LEN, pad_token_id=0,
            eos_token_id=EOS, bos_token_id=1)  # fmt: skip


def save_tokenizer(folder) -> None:
    """A word-level fast tokenizer appending [EOS], saved as the checkpoint's own."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tok = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="$A [EOS]", special_tokens=[("[EOS]", EOS)]
    )
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]",
        model_max_length=MAX_LEN,
    )  # fmt: skip
    fast.save_pretrained(folder)


def _config(kind: str):
    if kind == "clip":
        return transformers.CLIPConfig(
            vision_config=VISION, text_config=TEXT, projection_dim=24
        ), transformers.CLIPModel
    # SigLIP has no projections: the text head maps to the image width.
    text = {k: v for k, v in TEXT.items() if k != "bos_token_id"} | {"projection_size": 64}
    return transformers.SiglipConfig(vision_config=VISION, text_config=text), (
        transformers.SiglipModel
    )


@pytest.fixture(scope="module", params=["clip", "siglip"])
def hf_pair(request, tmp_path_factory):
    kind = request.param
    cfg, cls = _config(kind)
    torch.manual_seed(0)
    model = cls(cfg).eval()
    with torch.no_grad():  # a non-trivial bias, so a dropped one could not hide
        if getattr(model, "logit_bias", None) is not None:
            model.logit_bias.fill_(-1.5)
        model.logit_scale.fill_(2.0)
    folder = tmp_path_factory.mktemp(kind)
    model.save_pretrained(folder)
    save_tokenizer(folder)
    loaded = open_model(folder)
    ref = cls.from_pretrained(folder, attn_implementation="eager").eval()
    tok = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    torch.manual_seed(1)
    x = torch.randn(1, 3, 56, 56)
    return kind, loaded, ref, tok, x


def _tokens(kind, tok, prompts):
    padding = "max_length" if kind == "siglip" else True
    t = tok(prompts, padding=padding, max_length=MAX_LEN, truncation=True, return_tensors="pt")
    return {"input_ids": t["input_ids"]} if kind == "siglip" else dict(t)


def test_scores_equal_the_models_own_zero_shot_logits(hf_pair):
    kind, loaded, ref, tok, x = hf_pair
    cap = capture(prompted_adapter(loaded.checkpoint, PROMPTS), x)
    with torch.no_grad():
        out = ref(pixel_values=x, **_tokens(kind, tok, PROMPTS))
    expected = out.logits_per_image[0]  # (K,)
    assert float(expected.std()) > 1e-3  # the prompts score differently: the check can fail
    assert torch.allclose(cap.logits, expected, atol=1e-4)
    assert torch.allclose(cap.probabilities, expected.softmax(-1), atol=1e-4)


def test_prompt_gradient_equals_autograd_through_transformers(hf_pair):
    kind, loaded, ref, tok, x = hf_pair
    cap = capture(prompted_adapter(loaded.checkpoint, PROMPTS), x)
    k = 2
    out = ref(pixel_values=x, output_attentions=True, **_tokens(kind, tok, PROMPTS))
    attn = out.vision_model_output.attentions  # the eager tensors that multiply V
    expected = torch.cat(torch.autograd.grad(out.logits_per_image[0, k], attn))  # (L, h, T, T)
    got = cap.gradients(k)
    assert float(expected.abs().max()) > 0
    assert torch.allclose(got, expected, atol=1e-5 * float(expected.abs().max()) + 1e-9)


def test_several_prompts_give_a_top5_and_a_map_each(hf_pair):
    _, loaded, _, _, x = hf_pair
    res = explain_prompts(loaded.checkpoint, x, PROMPTS, settings=MapSettings(method="relevance"))
    assert [p for p, _ in res.top] == [PROMPTS[i] for i in res.scores.argsort()[::-1][:5]]
    assert all(m.shape == (4, 4) for m in res.maps.values())
    assert not all((res.maps[PROMPTS[0]] == m).all() for m in res.maps.values())


def test_without_a_tokenizer_prompts_say_why(tmp_path):
    cfg, cls = _config("clip")
    torch.manual_seed(0)
    cls(cfg).save_pretrained(tmp_path)  # no tokenizer files
    loaded = open_model(tmp_path)
    with pytest.raises(PromptError, match="tokenizer"):
        prompted_adapter(loaded.checkpoint, ["a dog"])
