"""Bad input gets a clear InteropError; positional embeddings resample on request."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from inspector.core.config import ViTConfig
from inspector.core.interop import (
    InteropError,
    detect_family,
    open_checkpoint,
    resample_pos_embed,
)
from inspector.core.model import VisionTransformer

# A timm-layout model built from our own class (same key names), so no timm needed here.
TIMM_LIKE = ViTConfig(
    image_size=32,
    patch_size=8,
    hidden_size=48,
    depth=2,
    num_heads=3,
    num_classes=4,
    pos_encoding="learned",
    attn_out_proj=True,
    final_norm=True,
    layer_norm_eps=1e-6,
)


def _timm_like_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return VisionTransformer(TIMM_LIKE).state_dict()


class _CreatesFileWhenUnpickled:
    """Unpickling this object calls open(marker, "w"), creating the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_unknown_layout_lists_recognised_and_unrecognised_keys(tmp_path):
    sd = {
        "cls_token": torch.zeros(1, 1, 8),
        "pos_embed": torch.zeros(1, 5, 8),
        "backbone.stem.weight": torch.zeros(8, 3, 4, 4),
        "backbone.mixer.0.weight": torch.zeros(8),
    }
    torch.save(sd, tmp_path / "odd.pth")
    with pytest.raises(InteropError) as err:
        open_checkpoint(tmp_path / "odd.pth")
    msg = str(err.value)
    assert "unknown checkpoint layout" in msg and "closest layout is timm" in msg
    assert "recognised 2 of 4 keys ('cls_token', 'pos_embed')" in msg
    assert "not recognised: 'backbone.mixer.0.weight', 'backbone.stem.weight'" in msg


def test_unknown_layout_summarises_long_key_lists():
    sd = {f"layer{i}.weight": torch.zeros(1) for i in range(25)}
    with pytest.raises(InteropError, match=r"none of its 25 keys.*\(and 15 more\)"):
        detect_family(sd)


def test_shape_mismatch_names_key_and_both_shapes(tmp_path):
    sd = _timm_like_state()
    sd["blocks.1.mlp.fc1.weight"] = torch.zeros(191, 48)
    sd["blocks.1.mlp.fc1.bias"] = torch.zeros(191)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(
        InteropError,
        match=r"'blocks\.1\.mlp\.fc1\.weight'.*the file has "
        r"\(191, 48\).*expects \(192, 48\)",
    ):
        open_checkpoint(tmp_path / "bad.pth", heads=3)


def test_shape_mismatch_names_the_foreign_key(tmp_path):
    tv = pytest.importorskip("torchvision.models.vision_transformer")
    sd = tv.VisionTransformer(
        image_size=32,
        patch_size=8,
        num_layers=2,
        num_heads=3,
        hidden_dim=48,
        mlp_dim=192,
        num_classes=5,
    ).state_dict()
    key = "encoder.layers.encoder_layer_1.self_attention.in_proj_weight"
    sd[key] = torch.zeros(96, 48)
    torch.save(sd, tmp_path / "tv.pth")
    with pytest.raises(
        InteropError,
        match=rf"'{key}' \(our 'blocks\.1\.attn\.qkv\.weight'\): "
        r"the file has \(96, 48\).*expects \(144, 48\)",
    ):
        open_checkpoint(tmp_path / "tv.pth", heads=3)


@pytest.mark.parametrize("wrap", [False, True])
def test_pickled_object_is_refused_and_never_unpickled(tmp_path, wrap):
    marker = tmp_path / "pwned.txt"
    obj = _CreatesFileWhenUnpickled(str(marker))
    torch.save({"model": obj} if wrap else obj, tmp_path / "evil.pth")
    assert not marker.exists()
    with pytest.raises(InteropError, match=r"not unpickled.*model\.state_dict\(\)"):
        open_checkpoint(tmp_path / "evil.pth")
    assert not marker.exists()


def test_whole_module_is_refused_with_instructions(tmp_path):
    torch.save(nn.Sequential(nn.Linear(2, 2)), tmp_path / "whole.pt")
    with pytest.raises(
        InteropError,
        match=r"whole model saved with torch\.save\(model\).*"
        r"torch\.save\(model\.state_dict\(\)",
    ):
        open_checkpoint(tmp_path / "whole.pt")


def test_missing_file_bad_suffix_and_non_torch_file(tmp_path):
    with pytest.raises(InteropError, match="not found"):
        open_checkpoint(tmp_path / "nope.pth")
    (tmp_path / "w.onnx").write_bytes(b"x")
    with pytest.raises(InteropError, match=r"unsupported file type '\.onnx'"):
        open_checkpoint(tmp_path / "w.onnx")
    (tmp_path / "notes.pth").write_text("hello")
    with pytest.raises(InteropError, match="text file"):
        open_checkpoint(tmp_path / "notes.pth")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pt")
    with pytest.raises(InteropError, match=r"dict without weights.*'epoch', 'lr'"):
        open_checkpoint(tmp_path / "meta.pt")


def test_preprocess_of_wrong_size_is_refused(tmp_path):
    from inspector.core.config import Preprocess

    torch.save(_timm_like_state(), tmp_path / "v.pth")
    with pytest.raises(InteropError, match=r"image_size 64 but the model takes 32x32"):
        open_checkpoint(tmp_path / "v.pth", heads=3, preprocess=Preprocess(image_size=64))


def test_resample_pos_embed_against_timm(tmp_path):
    timm_layers = pytest.importorskip("timm.layers", reason="timm's resampler is the reference")
    torch.save(_timm_like_state(), tmp_path / "v.pth")
    ckpt = open_checkpoint(tmp_path / "v.pth", heads=3)
    for size in (48, 16):  # up (grid 4 -> 6) and down (4 -> 2)
        new = resample_pos_embed(ckpt, size)
        g = size // 8
        ref = timm_layers.resample_abs_pos_embed(
            ckpt.state_dict["pos_embed"],
            new_size=[g, g],
            num_prefix_tokens=1,
            interpolation="bicubic",
            antialias=True,
        )
        torch.testing.assert_close(new.state_dict["pos_embed"], ref, atol=1e-6, rtol=0)
        assert new.config.image_size == size and new.preprocess.image_size == size
        assert new.class_names == ckpt.class_names
        with torch.no_grad():
            assert new.build_model()(torch.randn(1, 3, size, size)).shape == (1, 4)
    assert ckpt.config.image_size == 32  # the input checkpoint is unchanged
    same = resample_pos_embed(ckpt, 32)
    assert torch.equal(same.state_dict["pos_embed"], ckpt.state_dict["pos_embed"])
    with pytest.raises(InteropError, match="multiple of the patch size 8"):
        resample_pos_embed(ckpt, 36)


def test_resample_keeps_prefix_tokens_and_constant_grids():
    # Independent invariant: a constant grid stays constant; class/distillation rows unchanged.
    from inspector.core.checkpoint import Checkpoint
    from inspector.core.config import Preprocess

    cfg = TIMM_LIKE.replace(distill_token=True)
    state = VisionTransformer(cfg).state_dict()
    pos = torch.full((1, cfg.num_tokens, 48), 0.25)
    pos[:, :2] = torch.randn(1, 2, 48)
    state["pos_embed"] = pos
    ckpt = Checkpoint(cfg, state, ["a", "b", "c", "d"], Preprocess(image_size=32))
    new = resample_pos_embed(ckpt, 64).state_dict["pos_embed"]
    assert new.shape == (1, 2 + 64, 48)
    assert torch.equal(new[:, :2], pos[:, :2])
    torch.testing.assert_close(new[:, 2:], torch.full((1, 64, 48), 0.25), atol=1e-6, rtol=0)
