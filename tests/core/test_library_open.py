"""Opening library models: a timm hub folder, --arch, one-line errors (missing library,
wrong architecture)."""

from __future__ import annotations

import json

import pytest
import torch

timm = pytest.importorskip("timm")

from inspector.core.capture import capture  # noqa: E402
from inspector.core.explain import open_model  # noqa: E402
from inspector.core.library import LibraryError, require  # noqa: E402
from inspector.core.load_options import LoadOptions  # noqa: E402


def _small(name: str, **kw):
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=7, **kw).eval()


def test_timm_hub_folder(tmp_path):
    from safetensors.torch import save_file

    m = _small("vit_small_patch14_reg4_dinov2", depth=1, img_size=224)
    save_file(
        {k: v.contiguous() for k, v in m.state_dict().items()}, tmp_path / "model.safetensors"
    )
    cfg = {
        "architecture": "vit_small_patch14_reg4_dinov2",
        "num_classes": 7,
        "pretrained_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "crop_pct": 1.0},
        "label_names": [f"n{i}" for i in range(7)],
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    loaded = open_model(tmp_path, options=LoadOptions(image_size=224))
    assert loaded.checkpoint.class_names[3] == "n3"
    assert loaded.checkpoint.preprocess.mean == (0.5, 0.5, 0.5)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = m(x).softmax(-1)[0]
    assert torch.allclose(capture(loaded.model, x).probabilities, expected, atol=1e-4)


def test_arch_names_what_inference_cannot_tell(tmp_path):
    # QuickGELU CLIP has the same keys as GELU CLIP: only --arch can tell them apart.
    m = _small("vit_base_patch16_clip_quickgelu_224", depth=1, embed_dim=192, num_heads=3)
    path = tmp_path / "clip.pth"
    torch.save(m.state_dict(), path)
    x = torch.randn(1, 3, 224, 224) * 4  # large activations, where QuickGELU differs from GELU
    with torch.no_grad():
        expected = m(x).softmax(-1)[0]
        logits = m(x)[0]
    guessed = open_model(path)
    assert guessed.checkpoint.config.arch == "vit_base_patch16_clip_224"
    named = open_model(path, options=LoadOptions(arch="vit_base_patch16_clip_quickgelu_224"))
    assert named.checkpoint.config.arch == "vit_base_patch16_clip_quickgelu_224"
    assert torch.allclose(capture(named.model, x).probabilities, expected, atol=1e-4)
    err_named = (capture(named.model, x).logits - logits).abs().max()
    err_guessed = (capture(guessed.model, x).logits - logits).abs().max()
    assert err_guessed > 100 * err_named  # GELU is a different model: only --arch can tell


def test_wrong_arch_is_one_error_naming_keys(tmp_path):
    m = _small("deit3_small_patch16_224", depth=1)
    path = tmp_path / "deit3.pth"
    torch.save(m.state_dict(), path)
    with pytest.raises(LibraryError, match="do not fit timm's vit_base_patch16_siglip_224"):
        open_model(path, options=LoadOptions(arch="vit_base_patch16_siglip_224"))


def test_missing_library_gets_a_one_line_install_message(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "open_clip", None)  # what an absent package looks like
    with pytest.raises(LibraryError) as info:
        require("open_clip")
    assert str(info.value) == (
        "OpenCLIP models need the 'open_clip' package: pip install vit-inspector[clip]"
    )
