"""LoadOptions: what the user says about a checkpoint, turned into an opened checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inspector.core.checkpoint import Checkpoint, save_checkpoint
from inspector.core.config import Preprocess, ViTConfig
from inspector.core.explain import open_model
from inspector.core.interop import InteropError, open_checkpoint
from inspector.core.load_options import (
    LoadOptions,
    LoadOptionsError,
    apply_options,
    load_with_options,
    needs_heads,
    read_class_names,
)
from inspector.core.model import VisionTransformer, sincos_table
from inspector.core.preprocess import prepare_image, to_tensor

CFG = ViTConfig(image_size=32, patch_size=8, num_classes=3, hidden_size=16, depth=1, num_heads=2)


@pytest.fixture
def ours(tmp_path):
    torch.manual_seed(0)
    ckpt = Checkpoint.from_model(
        VisionTransformer(CFG), class_names=["a", "b", "c"], preprocess=Preprocess(image_size=32)
    )
    return save_checkpoint(tmp_path / "ours.pt", ckpt)


def test_class_names_file(tmp_path):
    p = tmp_path / "names.txt"
    p.write_text("\ufeffred fox\n  blue whale \ngreen tree\n\n\n", encoding="utf-8")
    assert read_class_names(p) == ["red fox", "blue whale", "green tree"]
    p.write_text("a\n\nb\n")
    with pytest.raises(LoadOptionsError, match="blank line at line 2"):
        read_class_names(p)
    p.write_text("\n\n")
    with pytest.raises(LoadOptionsError, match="empty"):
        read_class_names(p)
    with pytest.raises(LoadOptionsError, match="does not exist"):
        read_class_names(tmp_path / "missing.txt")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"heads": 0}, "heads"),
        ({"normalisation": "imagenet1k"}, "normalisation"),
        ({"policy": "crop"}, "resize policy"),
        ({"image_size": -32}, "image size"),
        ({"class_names": []}, "empty"),
    ],
)
def test_invalid_options_are_refused_by_name(kwargs, needle):
    with pytest.raises(LoadOptionsError, match=needle):
        LoadOptions(**kwargs)


@pytest.mark.parametrize(
    ("name", "mean", "std"),
    [
        ("imagenet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ("half", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ("none", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    ],
)
def test_normalisation_reaches_the_model_input(ours, name, mean, std):
    ckpt = load_with_options(ours, LoadOptions(normalisation=name))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    x = to_tensor(prepare_image(image, ckpt.preprocess), ckpt.preprocess)  # (1, 3, 32, 32)
    ref = (image.astype(np.float64) / 255.0 - np.array(mean)) / np.array(std)  # (32, 32, 3)
    np.testing.assert_allclose(x[0].permute(1, 2, 0).double().numpy(), ref, atol=1e-5)
    assert ckpt.provenance["load_options"]["normalisation"] == name


def test_resize_crop_policy_crops_the_centre(ours):
    ckpt = load_with_options(ours, LoadOptions(policy="resize_crop"))
    assert ckpt.preprocess.policy == "resize_crop"
    # A 64-wide image whose left and right quarters are black and centre white: resizing the
    # short side (32) to round(32 / 0.875) = 37 and cropping the centre 32 keeps mostly white;
    # the plain resize keeps both black bands.
    image = np.zeros((32, 64, 3), np.uint8)
    image[:, 16:48] = 255
    cropped = prepare_image(image, ckpt.preprocess)
    resized = prepare_image(image, load_with_options(ours, LoadOptions(policy="resize")).preprocess)
    assert cropped.shape == resized.shape == (32, 32, 3)
    assert (resized[:, :6] < 10).all() and (resized[:, -6:] < 10).all()
    assert (cropped[:, 12:20] > 245).all() and cropped.mean() > resized.mean()


def test_default_options_change_nothing(ours):
    ckpt = load_with_options(ours)
    ref = open_checkpoint(ours)
    assert ckpt.preprocess == ref.preprocess and ckpt.class_names == ref.class_names
    assert "load_options" not in ckpt.provenance
    assert all(torch.equal(ckpt.state_dict[k], v) for k, v in ref.state_dict.items())


def test_heads_contradicting_our_file_is_an_error(ours):
    with pytest.raises(LoadOptionsError, match="4 heads were given .* records 2 heads"):
        load_with_options(ours, LoadOptions(heads=4))
    assert load_with_options(ours, LoadOptions(heads=2)).config.num_heads == 2
    with pytest.raises(LoadOptionsError, match="residual connections off .* records them on"):
        load_with_options(ours, LoadOptions(residual=False))


def test_class_names_from_a_file_and_their_count(ours, tmp_path):
    (tmp_path / "n.txt").write_text("x\ny\nz\n")
    ckpt = load_with_options(ours, LoadOptions(class_names_file=tmp_path / "n.txt"))
    assert ckpt.class_names == ["x", "y", "z"]
    (tmp_path / "n.txt").write_text("x\ny\n")
    with pytest.raises(InteropError, match="3 outputs but 2 class names"):
        load_with_options(ours, LoadOptions(class_names_file=tmp_path / "n.txt"))


def test_image_size_resamples_and_the_model_runs(ours):
    loaded = open_model(ours, options=LoadOptions(image_size=48))
    cfg = loaded.checkpoint.config
    assert cfg.image_size == 48 and loaded.checkpoint.preprocess.image_size == 48
    # Sine/cosine tables are regenerated for 1 + 6 * 6 tokens (independent formula in model).
    torch.testing.assert_close(loaded.checkpoint.state_dict["pos_embed"][0], sincos_table(37, 16))
    with torch.no_grad():
        out = loaded.model.forward_with_attention(torch.randn(1, 3, 48, 48))
    assert out.logits.shape == (1, 3) and out.attentions[0].shape == (1, 2, 37, 37)
    # open_model's keyword and the options give the same checkpoint.
    direct = open_model(ours, image_size=48).checkpoint
    assert torch.equal(direct.state_dict["pos_embed"], loaded.checkpoint.state_dict["pos_embed"])


def test_apply_does_not_modify_its_input(ours):
    ckpt = open_checkpoint(ours)
    before = ckpt.preprocess
    out = apply_options(ckpt, LoadOptions(normalisation="none", image_size=16))
    assert ckpt.preprocess == before and ckpt.config.image_size == 32
    assert out.config.image_size == 16 and out.preprocess.std == (1.0, 1.0, 1.0)


def test_needs_heads_recognises_the_importers_wording(tmp_path):
    # The paper's layout under an unconventional name: heads unknown.
    sd = {
        "class_token": torch.zeros(1, 1, 8),
        "positional_embedding": torch.zeros(1, 5, 8),
        "linear_embedding.weight": torch.zeros(8, 3 * 4 * 4),
        "linear_embedding.bias": torch.zeros(8),
    }
    for n in ("q", "k", "v"):
        sd[f"transformer_blocks.0.mhsa.{n}_mapping.weight"] = torch.zeros(8, 8)
    sd["transformer_blocks.0.mlp.0.weight"] = torch.zeros(32, 8)
    sd["transformer_blocks.0.mlp.0.bias"] = torch.zeros(32)
    sd["transformer_blocks.0.mlp.2.weight"] = torch.zeros(8, 32)
    sd["transformer_blocks.0.mlp.2.bias"] = torch.zeros(8)
    sd["mlp.0.weight"], sd["mlp.0.bias"] = torch.zeros(2, 8), torch.zeros(2)
    torch.save(sd, tmp_path / "model.pth")
    with pytest.raises(InteropError) as info:
        open_checkpoint(tmp_path / "model.pth")
    assert needs_heads(str(info.value))
    assert open_checkpoint(tmp_path / "model.pth", heads=2).config.num_heads == 2
    # Other failures are not a question about heads.
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InteropError) as info:
        open_checkpoint(tmp_path / "junk.pt")
    assert not needs_heads(str(info.value))
    assert not needs_heads("shape mismatch for 'head.weight'")
