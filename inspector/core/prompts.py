"""Text-prompted maps for CLIP-like models: the target is the image-text similarity.

:class:`PromptedAdapter` wraps an image adapter whose logits are the image embedding (an
OpenCLIP image tower, :mod:`inspector.core.library.clip`) and turns them into one score per
prompt, ``s_k = scale * cos(img, text_k) + bias`` -- CLIP's own zero-shot logits (SigLIP's with
its bias). Prompts then *are* the classes: the capture's probabilities are the zero-shot
softmax over the prompts, its top-k the zero-shot ranking, and every gradient method
(``dy/dA`` of the chosen prompt's score) and Chefer et al.'s relevance (their rule for the
image encoder of a bi-modal model: the similarity is the target, relevance propagates through
the image self-attention) run unchanged on it.

:func:`explain_prompts` is the function the CLI's ``explain --prompt`` calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .capture import Capture, capture
from .model import ModelOutput

__all__ = [
    "PromptResult",
    "PromptedAdapter",
    "explain_prompts",
    "prompted_adapter",
    "write_prompt_outputs",
]


class PromptError(ValueError):
    """Prompts asked of a model that has no text tower, or no prompts."""


class PromptedAdapter:
    """An image adapter with one output per text prompt (see the module text)."""

    def __init__(
        self,
        image_adapter: Any,
        text_embeddings: torch.Tensor,
        prompts: Sequence[str],
        *,
        scale: float,
        bias: float = 0.0,
    ) -> None:
        if len(prompts) == 0 or text_embeddings.shape[0] != len(prompts):
            raise PromptError("give at least one prompt, one embedding each")
        self.inner = image_adapter
        self.prompts = list(prompts)
        self.text = F.normalize(text_embeddings.detach().float(), dim=-1)  # (K, E)
        self.scale, self.bias = float(scale), float(bias)
        self.num_prefix_tokens = image_adapter.num_prefix_tokens
        self.grid_size = image_adapter.grid_size
        self.token_layout = getattr(image_adapter, "token_layout", None)
        self.residual = getattr(image_adapter, "residual", True)
        self.num_classes = len(self.prompts)

    @property
    def device(self) -> torch.device:
        return self.inner.device

    @property
    def last_extras(self) -> dict:
        return self.inner.last_extras

    def forward_with_attention(self, x: torch.Tensor) -> ModelOutput:
        out = self.inner.forward_with_attention(x)
        img = F.normalize(out.logits, dim=-1)  # (B, E): the image embedding, normalised
        scores = self.scale * img @ self.text.to(img.device).T + self.bias  # (B, K)
        return ModelOutput(scores, out.attentions)


def prompted_adapter(ckpt: Any, prompts: Sequence[str]) -> PromptedAdapter:
    """The adapter of a checkpoint with a text tower (``ckpt.text``) for these prompts."""
    text = getattr(ckpt, "text", None)
    if text is None:
        raise PromptError(
            "text prompts need a model with a text tower (OpenCLIP: --arch open_clip:NAME)"
        )
    return PromptedAdapter(
        ckpt.adapter, text.embed(prompts), prompts, scale=text.logit_scale, bias=text.logit_bias
    )


@dataclass
class PromptResult:
    """Zero-shot ranking and one map per prompt.

    Attributes:
        top: up to 5 ``(prompt, probability)``, best first (softmax over the prompts).
        scores: ``(K,)`` the similarity scores (the targets of the gradient methods).
        maps: prompt -> ``(rows, cols)`` float32 map of ``method`` for that prompt's score.
    """

    top: list[tuple[str, float]]
    scores: np.ndarray
    maps: dict[str, np.ndarray]
    capture: Capture


def explain_prompts(
    ckpt: Any, image: torch.Tensor, prompts: Sequence[str], *, method: str = "relevance"
) -> PromptResult:
    """Capture ``image`` ``(1, 3, S, S)`` once and map each prompt's similarity.

    Args:
        ckpt: an opened checkpoint with a text tower (an OpenCLIP model).
        image: the preprocessed image.
        prompts: one or more text prompts.
        method: a :func:`~inspector.core.readout.readout_map` method; gradient methods
            (``grad-rollout``, ``relevance``) use the prompt's score.
    """
    from .saliency._readout import readout_map

    adapter = prompted_adapter(ckpt, prompts)
    cap = capture(adapter, image)
    top = [(adapter.prompts[i], p) for i, p in cap.top_k(5)]
    maps = {p: readout_map(cap, method, class_index=k) for k, p in enumerate(adapter.prompts)}
    return PromptResult(top, cap.logits.numpy(), maps, cap)


def write_prompt_outputs(
    loaded: Any,
    image_path: Any,
    prompts: Sequence[str],
    out_dir: Any,
    *,
    method: str = "relevance",
    overwrite: bool = False,
) -> list[str]:
    """``explain --prompt``: ``<stem>_prompt<k>.npy`` per prompt and ``<stem>_prompts.json``
    (zero-shot top-5, scores, prompt of each map), atomically; returns lines to print."""
    from pathlib import Path

    from .explain import load_image
    from .export import check_writable, save_json, save_npy
    from .saliency._readout import READOUT_METHODS

    if method not in READOUT_METHODS:
        method = "relevance"
    path, out = Path(image_path), Path(out_dir)
    stem = path.stem
    targets = [out / f"{stem}_prompt{k}.npy" for k in range(len(prompts))]
    targets.append(out / f"{stem}_prompts.json")
    check_writable(targets, overwrite=overwrite)
    image = load_image(path, loaded)
    res = explain_prompts(loaded.checkpoint, image.tensor, prompts, method=method)
    for k, prompt in enumerate(prompts):
        save_npy(targets[k], res.maps[prompt], overwrite=overwrite)
    record = {
        "image": str(path),
        "method": method,
        "target": "image-text similarity (scale * cosine)",
        "zero_shot_top5": [{"prompt": p, "probability": q} for p, q in res.top],
        "prompts": [
            {"prompt": p, "score": float(res.scores[k]), "map": targets[k].name}
            for k, p in enumerate(prompts)
        ],
    }
    save_json(targets[-1], record, overwrite=overwrite)
    return [f"{path.name}: {p!r} ({q:.3f})" for p, q in res.top]
