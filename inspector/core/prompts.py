"""Text-prompted maps for CLIP-like models: the target is the image-text similarity.

:class:`PromptedAdapter` wraps an image adapter whose logits are the image embedding (an
OpenCLIP image tower, :mod:`inspector.core.library.clip`) and turns them into one score per
prompt, ``s_k = scale * cos(img, text_k) + bias`` -- CLIP's own zero-shot logits (SigLIP's with
its bias). Prompts then *are* the classes: the capture's probabilities are the zero-shot
softmax over the prompts, its top-k the zero-shot ranking, and every gradient method
(``dy/dA`` of the chosen prompt's score) and Chefer et al.'s relevance (their rule for the
image encoder of a bi-modal model: the similarity is the target, relevance propagates through
the image self-attention) run unchanged on it.

Text towers: OpenCLIP's (:mod:`inspector.core.library.clip`, its packaged tokenizer) and
Hugging Face ``CLIPModel`` / ``SiglipModel`` (:mod:`inspector.core.library.hf_text`, the
tokenizer of the checkpoint's folder).

:func:`explain_prompts` is the function the CLI's ``explain --prompt`` calls; the GUI's prompt
list uses :func:`with_prompts` (the same adapter as a model whose classes are the prompts) and
the one per-image pipeline, whose map for prompt ``k`` is :func:`prompt_map`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from .capture import Capture, capture
from .model import ModelOutput

if TYPE_CHECKING:
    from .saliency import MapSettings

__all__ = [
    "PromptResult",
    "PromptedAdapter",
    "explain_prompts",
    "prompt_map",
    "prompted_adapter",
    "with_prompts",
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
        notes = "; ".join(getattr(ckpt, "provenance", {}).get("import_notes", []))
        why = f" ({notes})" if "text prompts" in notes else ""
        raise PromptError(
            "text prompts need a model with a text tower: OpenCLIP (--arch open_clip:NAME) or "
            f"a Hugging Face CLIPModel / SiglipModel folder with its tokenizer{why}"
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


def prompt_map(cap: Capture, k: int, settings: MapSettings) -> np.ndarray:
    """The ``(rows, cols)`` map (divided by its maximum) of prompt ``k``'s similarity: the
    method and knobs of ``settings`` with prompt ``k`` as the target class."""
    from .saliency import compute_map

    return compute_map(cap, settings=settings.replace(class_index=k))


def explain_prompts(
    ckpt: Any,
    image: torch.Tensor,
    prompts: Sequence[str],
    *,
    method: str = "relevance",
    settings: MapSettings | None = None,
) -> PromptResult:
    """Capture ``image`` ``(1, 3, S, S)`` once and map each prompt's similarity.

    Args:
        ckpt: an opened checkpoint with a text tower (OpenCLIP, Hugging Face CLIP/SigLIP).
        image: the preprocessed image.
        prompts: one or more text prompts.
        method: the method when ``settings`` is not given (with its default knobs);
            gradient methods (``grad-rollout``, ``relevance``) use the prompt's score.
        settings: the method and its knobs (the CLI's flags, the GUI's controls); its
            ``class_index`` is replaced by each prompt in turn.
    """
    from .saliency import MapSettings

    settings = settings or MapSettings(method=method)
    adapter = prompted_adapter(ckpt, prompts)
    cap = capture(adapter, image)
    top = [(adapter.prompts[i], p) for i, p in cap.top_k(5)]
    maps = {p: prompt_map(cap, k, settings) for k, p in enumerate(adapter.prompts)}
    return PromptResult(top, cap.logits.numpy(), maps, cap)


def with_prompts(loaded: Any, prompts: Sequence[str]) -> Any:
    """A :class:`~inspector.core.explain.LoadedModel` whose model is the prompted adapter and
    whose class names are the prompts: its capture's top-5 is the zero-shot ranking, and the
    map of class ``k`` (:func:`~inspector.core.pipeline.explain_one`) is prompt ``k``'s."""
    import dataclasses

    from .explain import LoadedModel

    base = loaded.checkpoint
    adapter = prompted_adapter(base, prompts)
    ckpt = dataclasses.replace(base, class_names=list(adapter.prompts))
    return LoadedModel(ckpt, adapter, loaded.path, loaded.device)  # type: ignore[arg-type]


def write_prompt_outputs(
    loaded: Any,
    image_path: Any,
    prompts: Sequence[str],
    out_dir: Any,
    *,
    method: str = "relevance",
    overwrite: bool = False,
    settings: MapSettings | None = None,
) -> list[str]:
    """``explain --prompt``: ``<stem>_prompt<k>.npy`` per prompt and ``<stem>_prompts.json``
    (zero-shot top-5, scores, prompt of each map), atomically; returns lines to print."""
    from pathlib import Path

    from .explain import load_image
    from .export import check_writable, save_json, save_npy
    from .saliency import MapSettings
    from .saliency._readout import READOUT_METHODS

    if method not in READOUT_METHODS:  # cls-attention / token-norm read no prompt
        method = "relevance"
    settings = (settings or MapSettings()).replace(method=method)
    path, out = Path(image_path), Path(out_dir)
    stem = path.stem
    targets = [out / f"{stem}_prompt{k}.npy" for k in range(len(prompts))]
    targets.append(out / f"{stem}_prompts.json")
    check_writable(targets, overwrite=overwrite)
    image = load_image(path, loaded)
    res = explain_prompts(loaded.checkpoint, image.tensor, prompts, settings=settings)
    for k, prompt in enumerate(prompts):
        save_npy(targets[k], res.maps[prompt], overwrite=overwrite)
    record = {
        "image": str(path),
        "method": method,
        "settings": settings.used_dict(),
        "target": "image-text similarity (scale * cosine)",
        "zero_shot_top5": [{"prompt": p, "probability": q} for p, q in res.top],
        "prompts": [
            {"prompt": p, "score": float(res.scores[k]), "map": targets[k].name}
            for k, p in enumerate(prompts)
        ],
    }
    save_json(targets[-1], record, overwrite=overwrite)
    return [f"{path.name}: {p!r} ({q:.3f})" for p, q in res.top]
