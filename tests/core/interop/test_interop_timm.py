"""timm ViT / DeiT checkpoints open into our VisionTransformer and behave identically."""

from __future__ import annotations

import pytest
import torch

timm = pytest.importorskip("timm", reason="timm is a test dependency that proves equivalence")
from interop_reference import QKRecorder, assert_equivalent, perturb_  # noqa: E402
from timm.models.deit import VisionTransformerDistilled  # noqa: E402
from timm.models.vision_transformer import VisionTransformer as TimmViT  # noqa: E402

from inspector.core.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from inspector.core.interop import InteropError, open_checkpoint  # noqa: E402
from inspector.core.interop.common import IMAGENET_MEAN  # noqa: E402


def _reference(model, images, heads):
    rec = QKRecorder()
    for i, blk in enumerate(model.blocks):
        rec.fused_qkv(i, blk.attn.qkv)
    with torch.no_grad():
        logits = model(images)
    rec.remove()
    return logits, rec.probs(heads)


def _images(n=3, size=32, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_timm_vit_matches_original(tmp_path):
    torch.manual_seed(0)
    orig = perturb_(
        TimmViT(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=5),
        seed=1,
    )
    path = tmp_path / "vit.pth"
    torch.save(orig.state_dict(), path)
    ckpt = open_checkpoint(path, heads=3)
    cfg = ckpt.config
    assert (
        cfg.image_size,
        cfg.patch_size,
        cfg.hidden_size,
        cfg.depth,
        cfg.num_heads,
        cfg.num_classes,
    ) == (32, 8, 48, 2, 3, 5)
    assert cfg.attn_out_proj and cfg.final_norm and cfg.layer_norm_eps == 1e-6
    assert ckpt.provenance["imported_from"] == "timm"
    assert ckpt.class_names == [f"class_{i}" for i in range(5)]
    assert ckpt.preprocess.mean == IMAGENET_MEAN and ckpt.preprocess.policy == "resize_crop"
    images = _images()
    assert_equivalent(ckpt, *_reference(orig, images, 3), images)


def test_deit_distilled_from_safetensors(tmp_path):
    safetensors_torch = pytest.importorskip(
        "safetensors.torch", reason="safetensors reads .safetensors files"
    )
    torch.manual_seed(0)
    orig = perturb_(
        VisionTransformerDistilled(
            img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=4, num_classes=7
        ),
        seed=2,
    )
    path = tmp_path / "deit.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in orig.state_dict().items()}, path)
    ckpt = open_checkpoint(path, heads=4)
    assert ckpt.config.distill_token and ckpt.config.num_prefix_tokens == 2
    images = _images(seed=3)
    assert_equivalent(ckpt, *_reference(orig, images, 4), images)


def test_standard_width_infers_heads_and_imagenet_names(tmp_path):
    # ViT-Ti width (192 -> 3 heads), 1000 classes -> ImageNet-1k names; no hint given.
    torch.manual_seed(0)
    orig = perturb_(
        TimmViT(img_size=32, patch_size=16, embed_dim=192, depth=1, num_heads=3, num_classes=1000),
        seed=4,
        std=0.1,
    )
    path = tmp_path / "vit_tiny.pth"
    torch.save(orig.state_dict(), path)
    ckpt = open_checkpoint(path)
    assert ckpt.config.num_heads == 3
    assert len(ckpt.class_names) == 1000
    assert ckpt.class_names[:2] == ["tench", "goldfish"]
    images = _images(n=2, seed=5)
    assert_equivalent(ckpt, *_reference(orig, images, 3), images)


def test_headless_timm_gets_zero_head_and_same_attention(tmp_path):
    torch.manual_seed(0)
    orig = perturb_(
        TimmViT(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=0),
        seed=6,
    )
    path = tmp_path / "headless.pth"
    torch.save(orig.state_dict(), path)
    ckpt = open_checkpoint(path, heads=3)
    assert ckpt.provenance["headless"] is True
    assert ckpt.config.num_classes == 1 and len(ckpt.class_names) == 1
    images = _images(seed=7)
    _, probs = _reference(orig, images, 3)
    assert_equivalent(ckpt, torch.zeros(3, 1), probs, images)


def test_save_as_ours_keeps_what_was_decided(tmp_path):
    orig = perturb_(
        TimmViT(img_size=32, patch_size=8, embed_dim=48, depth=1, num_heads=3, num_classes=2),
        seed=8,
    )
    torch.save(orig.state_dict(), tmp_path / "vit.pth")
    names = ["cat", "dog"]
    ckpt = open_checkpoint(tmp_path / "vit.pth", heads=3, class_names=names)
    save_checkpoint(tmp_path / "ours.pt", ckpt)
    back = load_checkpoint(tmp_path / "ours.pt")
    assert back.class_names == names and back.preprocess == ckpt.preprocess
    assert back.provenance["imported_from"] == "timm"
    # Opening our own file through the importer delegates to load_checkpoint.
    again = open_checkpoint(tmp_path / "ours.pt")
    assert again.config == ckpt.config and again.class_names == names
    for k, v in ckpt.state_dict.items():
        torch.testing.assert_close(again.state_dict[k], v, atol=0, rtol=0)


def test_class_names_disagreeing_with_head(tmp_path):
    orig = TimmViT(img_size=32, patch_size=8, embed_dim=48, depth=1, num_heads=3, num_classes=5)
    torch.save(orig.state_dict(), tmp_path / "vit.pth")
    with pytest.raises(InteropError, match=r"head has 5 outputs but 3 class names"):
        open_checkpoint(tmp_path / "vit.pth", heads=3, class_names=["a", "b", "c"])


def test_unknown_width_without_heads_asks_for_them(tmp_path):
    orig = TimmViT(img_size=32, patch_size=8, embed_dim=48, depth=1, num_heads=3, num_classes=5)
    torch.save(orig.state_dict(), tmp_path / "vit.pth")
    with pytest.raises(InteropError, match=r"heads=N"):
        open_checkpoint(tmp_path / "vit.pth")


def test_layer_scale_variant_is_refused_with_its_keys(tmp_path):
    orig = TimmViT(
        img_size=32,
        patch_size=8,
        embed_dim=48,
        depth=1,
        num_heads=3,
        num_classes=5,
        init_values=1e-5,
    )
    torch.save(orig.state_dict(), tmp_path / "vit_ls.pth")
    with pytest.raises(InteropError, match=r"blocks\.0\.ls1\.gamma"):
        open_checkpoint(tmp_path / "vit_ls.pth", heads=3)
