"""Hugging Face vision towers from a folder with ``config.json``: Dinov2 (with registers too),
CLIP and SigLIP, as ``*Model`` / ``*VisionModel`` / ``*ForImageClassification``.

The model is loaded with ``attn_implementation="eager"``: transformers then computes the
attention probabilities explicitly and returns them with ``output_attentions=True`` -- the
very tensors that multiply the values (dropout is the identity in eval mode), so they stay
in the autograd graph. Token layout: Dinov2 ``[class, registers..., patches]``, CLIP
``[class, patches]``, SigLIP ``[patches]`` with an attention-pool head (its
``nn.MultiheadAttention`` returns the head-averaged pool weights, recorded by a hook).
CLIP / SigLIP towers output their embedding (CLIP's ``image_embeds`` for a full
``CLIPModel``), as the OpenCLIP adapter does; a Dinov2 backbone without a classifier is
headless (one zero output). ``features`` in ``last_extras`` is the pooled embedding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..model import ModelOutput
from ..token_layout import TokenLayout
from . import LibraryError, require
from .checkpoint import HEADLESS, LibraryCheckpoint, LibraryConfig, preprocess_from

__all__ = ["HFVisionAdapter", "open_hf_folder"]

SUPPORTED = (
    "Dinov2Model",
    "Dinov2ForImageClassification",
    "Dinov2WithRegistersModel",
    "Dinov2WithRegistersForImageClassification",
    "CLIPVisionModel",
    "CLIPModel",
    "SiglipVisionModel",
    "SiglipModel",
)
# Per model type: default input normalisation (the families' published preprocessors).
_MEANS = {
    "dinov2": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    "siglip": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


class HFVisionAdapter:
    """Capture adapter over a Hugging Face vision model (see the module text)."""

    residual = True
    outputs_probabilities = False

    def __init__(self, model: nn.Module, *, image_size: int) -> None:
        self.model = model.eval()
        self.arch = type(model).__name__
        self.kind = next(k for k in ("dinov2", "clip", "siglip") if k in self.arch.lower())
        cfg = model.config
        vcfg = getattr(cfg, "vision_config", cfg)
        self.vision = getattr(model, "vision_model", None) or model
        if self.kind == "dinov2":
            self.vision = getattr(model, "dinov2", model)
        self.image_size = int(image_size)
        self.patch_size = int(vcfg.patch_size)
        g = self.image_size // self.patch_size
        self.grid_size: tuple[int, int] = (g, g)
        registers = int(getattr(vcfg, "num_register_tokens", 0) or 0)
        head = getattr(self.vision, "head", None) if self.kind == "siglip" else None
        if self.kind == "siglip":
            self.token_layout = TokenLayout(
                (), self.grid_size, "attention-pool" if head is not None else "mean"
            )
        else:
            self.token_layout = TokenLayout.standard(self.grid_size, registers=registers)
        self.num_prefix_tokens = self.token_layout.num_prefix_tokens
        self.num_layers = int(vcfg.num_hidden_layers)
        self.num_heads = int(vcfg.num_attention_heads)
        self.hidden_size = int(vcfg.hidden_size)
        self.classifier = getattr(model, "classifier", None)
        # CLIP / SigLIP towers: the outputs are the embedding (as for OpenCLIP), ready for
        # text prompts; a Dinov2 backbone without a classifier is headless (one zero output).
        self.embedding_out = self.classifier is None and self.kind != "dinov2"
        if self.classifier is not None:
            self.num_classes = int(cfg.num_labels)
        elif self.embedding_out:
            proj = getattr(model, "visual_projection", None)
            self.num_classes = int(proj.out_features) if proj is not None else self.hidden_size
        else:
            self.num_classes = 0
        self.headless = self.num_classes == 0
        self.last_extras: dict[str, torch.Tensor] = {}
        self._pool: torch.Tensor | None = None
        if head is not None:
            head.attention.register_forward_hook(self._pool_hook)

    def _pool_hook(self, _m: nn.Module, _inp: Any, out: Any) -> None:
        self._pool = out[1]  # (B, 1, T): heads averaged (need_weights, the default)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward_with_attention(self, x: torch.Tensor) -> ModelOutput:
        self._pool = None
        kwargs: dict[str, Any] = {"output_attentions": True, "output_hidden_states": True}
        if self.kind != "dinov2":  # Dinov2 always interpolates its position table
            kwargs["interpolate_pos_encoding"] = True
        was_training = self.model.training
        self.model.eval()
        try:
            if self.classifier is not None:
                out = self.model(pixel_values=x, **kwargs)
                logits, feats = out.logits, out.hidden_states[-1][:, 0]
            else:
                out = self.vision(pixel_values=x, **kwargs)
                feats = out.pooler_output
                proj = getattr(self.model, "visual_projection", None)
                if proj is not None:  # CLIPModel: the image embedding
                    feats = proj(feats)
                logits = feats if self.embedding_out else feats[:, :1] * 0.0
        finally:
            self.model.train(was_training)
        norms = torch.stack([h.detach().norm(dim=-1) for h in out.hidden_states[1:]], dim=1)
        self.last_extras = {"token_norms": norms, "features": feats}  # (B, L, T), (B, D)
        if self._pool is not None:
            self.last_extras["pool_attention"] = self._pool[:, 0]
        return ModelOutput(logits, list(out.attentions))


def _preprocess(folder: Path, kind: str, side: int):
    mean, std = _MEANS[kind]
    crop = 1.0
    pp = folder / "preprocessor_config.json"
    if pp.is_file():
        try:
            data = json.loads(pp.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LibraryError(f"cannot read {pp}: {exc}") from exc
        mean, std = data.get("image_mean", mean), data.get("image_std", std)
        size = data.get("size", {})
        short = size.get("shortest_edge") if isinstance(size, dict) else None
        if short and data.get("do_center_crop", False) and short > side:
            crop = side / short
    cfg = {"mean": mean, "std": std, "crop_pct": crop, "interpolation": "bicubic"}
    return preprocess_from(cfg, side)


def open_hf_folder(
    folder: Path, *, class_names: list[str] | None = None, image_size: int | None = None
) -> LibraryCheckpoint:
    """Load a supported Hugging Face model from ``folder`` (no download) behind the adapter."""
    transformers = require("transformers")
    try:
        cfg = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise LibraryError(f"{folder}: not a Hugging Face model folder ({exc})") from exc
    arch = (getattr(cfg, "architectures", None) or [None])[0]
    if arch not in SUPPORTED:
        raise LibraryError(
            f"{folder}: Hugging Face architecture {arch!r} is not supported; "
            f"supported: {', '.join(SUPPORTED)}"
        )
    cls = getattr(transformers, arch)
    try:
        model = cls.from_pretrained(str(folder), attn_implementation="eager", local_files_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise LibraryError(f"{folder}: cannot load {arch}: {exc}") from exc
    vcfg = getattr(cfg, "vision_config", cfg)
    side = int(image_size or (224 if "dinov2" in cfg.model_type else vcfg.image_size))
    adapter = HFVisionAdapter(model, image_size=side)
    n = adapter.num_classes
    if adapter.classifier is not None:
        labels = [cfg.id2label[i] for i in range(n)]
    else:
        labels = [f"embedding_{i}" for i in range(n)] if n else None
    names = class_names or labels or [HEADLESS]
    if n and len(names) != n:
        raise LibraryError(f"{len(names)} class names for a head of {n} outputs")
    config = LibraryConfig(
        family="huggingface",
        arch=arch,
        depth=adapter.num_layers,
        num_heads=adapter.num_heads,
        hidden_size=adapter.hidden_size,
        image_size=side,
        patch_size=adapter.patch_size,
        num_classes=max(1, n),
        num_prefix_tokens=adapter.num_prefix_tokens,
        grid=adapter.grid_size,
    )
    notes = ["eager attention, output_attentions=True"]
    text = None
    if arch in ("CLIPModel", "SiglipModel"):  # text prompts with the folder's tokenizer
        from .hf_text import hf_text_tower

        text, why = hf_text_tower(model, folder, adapter.kind)
        notes.append("text prompts: the folder's tokenizer" if text else f"no text prompts: {why}")
    return LibraryCheckpoint(
        config=config,
        adapter=adapter,
        class_names=list(names),
        preprocess=_preprocess(folder, adapter.kind, side),
        token_layout=adapter.token_layout,
        provenance={
            "imported_from": f"huggingface:{arch}",
            "source_file": str(folder),
            "headless": adapter.headless,
            "token_layout": adapter.token_layout.describe(),
            "import_notes": notes,
        },
        text=text,
    )
