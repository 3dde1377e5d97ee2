"""OpenCLIP models: a state dict plus its model name (``open_clip:ViT-B-32``).

The image tower runs as timm's CLIP ``VisionTransformer`` (converted by timm's own
``_convert_openai_clip``, the converter timm uses for these weights), so it gets the same
capture adapter as every timm ViT; its head is the CLIP projection, so the adapter's logits are
the image embedding. The text tower stays OpenCLIP's own module, with OpenCLIP's tokenizer
(its BPE vocabulary ships with the package: nothing is downloaded). Text-prompted scores are
:mod:`inspector.core.prompts`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from . import LibraryError, require

__all__ = ["ClipText", "open_open_clip"]


class ClipText:
    """OpenCLIP's text tower and tokenizer: prompts -> embeddings, plus the logit scale."""

    def __init__(self, model: nn.Module, tokenizer: Any) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.logit_scale = float(model.logit_scale.detach().exp())
        bias = getattr(model, "logit_bias", None)
        self.logit_bias = 0.0 if bias is None else float(bias.detach())

    def embed(self, prompts: Sequence[str]) -> torch.Tensor:
        """``(K, E)`` text embeddings (not normalised)."""
        with torch.no_grad():
            return self.model.encode_text(self.tokenizer(list(prompts)))


def _vision_kwargs(cfg: Mapping[str, Any]) -> dict[str, Any]:
    v = cfg["vision_cfg"]
    if v.get("timm_model_name") or isinstance(v.get("layers"), (list, tuple)):
        raise LibraryError("only OpenCLIP ViT image towers are supported (not timm/ResNet towers)")
    width = int(v["width"])
    kwargs = {
        "embed_dim": width,
        "depth": int(v["layers"]),
        "num_heads": width // int(v.get("head_width", 64)),
        "patch_size": int(v["patch_size"]),
        "img_size": int(v["image_size"]),
        "mlp_ratio": float(v.get("mlp_ratio", 4.0)),
        "num_classes": int(cfg["embed_dim"]),
        "pre_norm": True,
        "class_token": True,
    }
    if cfg.get("quick_gelu"):
        kwargs["act_layer"] = "quick_gelu"
    return kwargs


def open_open_clip(sd: Mapping[str, torch.Tensor], name: str, *, source: str = "") -> Any:
    """Build OpenCLIP model ``name`` (no download), load ``sd`` strictly, and return a
    :class:`~inspector.core.library.open.LibraryCheckpoint` whose adapter runs the image
    tower and whose ``text`` attribute holds :class:`ClipText`."""
    open_clip = require("open_clip")
    timm = require("timm")
    from timm.models.vision_transformer import _convert_openai_clip

    from .checkpoint import LibraryCheckpoint, LibraryConfig, preprocess_from
    from .timm_vit import TimmViTAdapter

    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise LibraryError(f"unknown OpenCLIP model {name!r} (see open_clip.list_models())")
    model = open_clip.create_model(name, pretrained=None)
    missing, unexpected = model.load_state_dict(dict(sd), strict=False)
    if missing or unexpected:
        raise LibraryError(
            f"the weights do not fit OpenCLIP {name}: missing {list(missing)[:5]}, "
            f"unexpected {list(unexpected)[:5]}"
        )
    kwargs = _vision_kwargs(cfg)
    vit = timm.create_model("vit_base_patch16_clip_224", pretrained=False, **kwargs)
    vit.load_state_dict(_convert_openai_clip(dict(sd), vit, prefix="visual."))
    side = kwargs["img_size"]
    adapter = TimmViTAdapter(vit, patch_size=kwargs["patch_size"], image_size=side)
    mean = getattr(model.visual, "image_mean", None) or (0.48145466, 0.4578275, 0.40821073)
    std = getattr(model.visual, "image_std", None) or (0.26862954, 0.26130258, 0.27577711)
    pcfg = {"mean": mean, "std": std, "crop_pct": 1.0, "interpolation": "bicubic"}
    config = LibraryConfig(
        family="open_clip",
        arch=name,
        depth=adapter.num_layers,
        num_heads=adapter.num_heads,
        hidden_size=adapter.hidden_size,
        image_size=side,
        patch_size=kwargs["patch_size"],
        num_classes=adapter.num_classes,
        num_prefix_tokens=adapter.num_prefix_tokens,
        grid=adapter.grid_size,
    )
    ckpt = LibraryCheckpoint(
        config=config,
        adapter=adapter,
        class_names=[f"embedding_{i}" for i in range(adapter.num_classes)],
        preprocess=preprocess_from(pcfg, side),
        token_layout=adapter.token_layout,
        provenance={
            "imported_from": f"open_clip:{name}",
            "source_file": source,
            "headless": False,
            "token_layout": adapter.token_layout.describe(),
            "import_notes": ["image tower run as timm's CLIP ViT; logits are the embedding"],
        },
    )
    ckpt.text = ClipText(model, open_clip.get_tokenizer(name))
    return ckpt
