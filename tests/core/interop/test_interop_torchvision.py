"""torchvision ViT checkpoints open into our VisionTransformer and behave identically."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

tv_vit = pytest.importorskip(
    "torchvision.models.vision_transformer",
    reason="torchvision is the reference implementation here",
)
from interop_reference import QKRecorder, assert_equivalent, perturb_  # noqa: E402

from inspector.core.interop import open_checkpoint  # noqa: E402


def _original(seed: int, heads: int = 3):
    torch.manual_seed(seed)
    model = tv_vit.VisionTransformer(
        image_size=32,
        patch_size=8,
        num_layers=2,
        num_heads=heads,
        hidden_dim=48,
        mlp_dim=192,
        num_classes=5,
    )
    return perturb_(model, seed=seed + 100)


def _reference(model, images, heads):
    """Logits from torchvision's own forward; probabilities recomputed from the q and k that
    its MultiheadAttention projects (in_proj applied to the input it receives)."""
    rec = QKRecorder()
    handles = []
    for i, layer in enumerate(model.encoder.layers):
        mha = layer.self_attention

        def pre_hook(m, args, i=i):
            x = args[0]  # (B, T, D), batch_first
            qkv = F.linear(x.double(), m.in_proj_weight.double(), m.in_proj_bias.double())
            D = x.shape[-1]
            rec.q[i], rec.k[i] = qkv[..., :D], qkv[..., D : 2 * D]

        handles.append(mha.register_forward_pre_hook(pre_hook))
    with torch.no_grad():
        logits = model(images)
    for h in handles:
        h.remove()
    return logits, rec.probs(heads)


def test_torchvision_vit_matches_original(tmp_path):
    orig = _original(0)
    path = tmp_path / "vit_tv.pth"
    torch.save(orig.state_dict(), path)
    ckpt = open_checkpoint(path, heads=3)
    assert ckpt.provenance["imported_from"] == "torchvision"
    assert ckpt.config.attn_out_proj and ckpt.config.final_norm
    assert ckpt.preprocess.policy == "resize_crop"
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert_equivalent(ckpt, *_reference(orig, images, 3), images)


def test_wrapped_under_model_with_module_prefix(tmp_path):
    # A training script's file: {"model": DataParallel state dict, "epoch", "optimizer"}.
    orig = _original(2, heads=4)
    wrapped = {
        "epoch": 7,
        "optimizer": {"lr": 0.1},
        "model": {"module." + k: v for k, v in orig.state_dict().items()},
    }
    path = tmp_path / "train_state.pt"
    torch.save(wrapped, path)
    ckpt = open_checkpoint(path, heads=4)
    assert ckpt.provenance["unwrapped"] == "['model'], prefix 'module.' removed"
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    assert_equivalent(ckpt, *_reference(orig, images, 4), images)


def test_file_saved_from_cuda_loads_on_cpu(tmp_path, monkeypatch):
    # Tag every storage as "cuda:0" while saving, as torch.save does for GPU tensors.
    orig = _original(4)
    monkeypatch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
    path = tmp_path / "from_gpu.pth"
    torch.save(orig.state_dict(), path)
    monkeypatch.undo()
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):  # proves the file is CUDA-tagged
            torch.load(path, weights_only=True)
    ckpt = open_checkpoint(path, heads=3)
    assert all(t.device.type == "cpu" for t in ckpt.state_dict.values())
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    assert_equivalent(ckpt, *_reference(orig, images, 3), images)
