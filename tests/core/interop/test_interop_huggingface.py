"""Hugging Face ViT / DeiT checkpoints open into our VisionTransformer and behave identically."""

from __future__ import annotations

import json
import re

import pytest
import torch

transformers = pytest.importorskip(
    "transformers", reason="transformers is the reference implementation for the HF layout"
)
from interop_reference import QKRecorder, assert_equivalent, perturb_  # noqa: E402

from inspector.core.interop import open_checkpoint  # noqa: E402

_Q = re.compile(r"(?:layers|encoder\.layer)\.(\d+)\.attention\.(?:q_proj|attention\.query)$")
_K = re.compile(r"(?:layers|encoder\.layer)\.(\d+)\.attention\.(?:k_proj|attention\.key)$")


def _small(cls_config=None, **kw):
    cls_config = cls_config or transformers.ViTConfig
    return cls_config(
        image_size=32,
        patch_size=8,
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=kw.pop("heads", 4),
        intermediate_size=80,
        **kw,
    )


def _reference(model, images, heads):
    """Logits from transformers' forward; probabilities recomputed from the outputs of its
    query and key projections (found by module name, either transformers layout)."""
    rec = QKRecorder()
    qs = {int(m.group(1)): mod for n, mod in model.named_modules() if (m := _Q.search(n))}
    ks = {int(m.group(1)): mod for n, mod in model.named_modules() if (m := _K.search(n))}
    assert qs and sorted(qs) == sorted(ks)
    for i in sorted(qs):
        rec.separate(i, qs[i], ks[i])
    with torch.no_grad():
        out = model(pixel_values=images)
    rec.remove()
    logits = out.logits if hasattr(out, "logits") else None
    return logits, rec.probs(heads)


def _images(seed):
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_vit_for_image_classification_save_pretrained(tmp_path):
    torch.manual_seed(0)
    labels = {i: name for i, name in enumerate(["ant", "bee", "cat", "dog", "eel"])}
    cfg = _small(num_labels=5, id2label=labels, label2id={v: k for k, v in labels.items()})
    orig = perturb_(transformers.ViTForImageClassification(cfg), seed=1)
    orig.save_pretrained(tmp_path)  # model.safetensors + config.json
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_mean": [0.4, 0.5, 0.6],
                "image_std": [0.2, 0.3, 0.4],
                "resample": 3,
                "do_resize": True,
                "size": {"height": 32, "width": 32},
            }
        )
    )
    ckpt = open_checkpoint(tmp_path / "model.safetensors")  # heads from config.json
    assert ckpt.provenance["imported_from"] == "huggingface"
    assert ckpt.config.num_heads == 4 and ckpt.config.layer_norm_eps == 1e-12
    assert ckpt.class_names == ["ant", "bee", "cat", "dog", "eel"]
    assert ckpt.preprocess.mean == (0.4, 0.5, 0.6) and ckpt.preprocess.std == (0.2, 0.3, 0.4)
    assert ckpt.preprocess.interpolation == "bicubic" and ckpt.preprocess.policy == "resize"
    images = _images(2)
    assert_equivalent(ckpt, *_reference(orig, images, 4), images)


def test_headless_vit_model_in_memory_layout_without_config(tmp_path):
    torch.manual_seed(0)
    orig = perturb_(transformers.ViTModel(_small(heads=3)), seed=3)
    path = tmp_path / "pytorch_model.bin"
    torch.save(orig.state_dict(), path)  # transformers' in-memory key names, pooler included
    ckpt = open_checkpoint(path, heads=3)
    assert ckpt.provenance["headless"] is True
    assert ckpt.preprocess.mean == (0.5, 0.5, 0.5)
    assert any("pooler" in n for n in ckpt.provenance["import_notes"])
    images = _images(4)
    _, probs = _reference(orig, images, 3)
    assert_equivalent(ckpt, torch.zeros(3, 1), probs, images)


def test_deit_with_teacher(tmp_path):
    torch.manual_seed(0)
    orig = perturb_(
        transformers.DeiTForImageClassificationWithTeacher(
            _small(transformers.DeiTConfig, num_labels=6)
        ),
        seed=5,
    )
    orig.save_pretrained(tmp_path)
    ckpt = open_checkpoint(tmp_path / "model.safetensors")
    assert ckpt.config.distill_token
    images = _images(6)
    assert_equivalent(ckpt, *_reference(orig, images, 4), images)


def test_deit_single_classifier_with_distillation_token(tmp_path):
    torch.manual_seed(0)
    orig = perturb_(
        transformers.DeiTForImageClassification(_small(transformers.DeiTConfig, num_labels=6)),
        seed=7,
    )
    path = tmp_path / "deit.pth"
    torch.save(orig.state_dict(), path)
    ckpt = open_checkpoint(path, heads=4)
    assert ckpt.config.distill_token
    images = _images(8)
    assert_equivalent(ckpt, *_reference(orig, images, 4), images)
