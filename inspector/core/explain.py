"""The pipeline the CLI and the GUI share: checkpoint -> model, image -> input, capture, map.

docs/ARCHITECTURE.md section 2: a checkpoint becomes a model plus its metadata; an image becomes an
input tensor with the model's own preprocessing; one forward pass is captured; every map is a
cheap pure function of that capture.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .capture import Capture, capture
from .checkpoint import Checkpoint
from .imageio import read_image
from .load_options import LoadOptions
from .model import VisionTransformer
from .preprocess import prepare_image, to_tensor

Smoothing = Literal["none", "paper"]


@dataclass
class LoadedModel:
    """A model ready for inspection, with the metadata its checkpoint carried."""

    checkpoint: Checkpoint
    model: VisionTransformer
    path: Path | None
    device: torch.device

    @property
    def class_names(self) -> list[str]:
        return self.checkpoint.class_names

    @property
    def name(self) -> str:
        return self.path.name if self.path else "model"


def open_model(
    path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    heads: int | None = None,
    options: LoadOptions | None = None,
    **overrides: Any,
) -> LoadedModel:
    """Open any checkpoint the app understands (ours or a foreign ViT) and build its model.

    Args:
        path: checkpoint file.
        device: where the model runs.
        heads: number of heads for layouts that do not record it (the paper's files).
        options: what the user said about the file (CLI flags, the GUI load dialog): heads,
            class names, normalisation, resize policy, an input size to resample the
            position table for (:mod:`inspector.core.load_options`).
        **overrides: passed to :func:`inspector.core.interop.open_checkpoint`
            (``class_names``, ``preprocess``, ``residual``, ``pos_encoding``); they win over
            ``options``.

    Raises:
        ValueError: (``InteropError`` / ``LoadOptionsError``) with a message for the user.
    """
    from .library.open import is_library_source, open_library
    from .load_options import load_with_options

    if is_library_source(path, getattr(options, "arch", None)):
        # timm / Hugging Face / OpenCLIP families run as the library's module behind a
        # capture adapter (docs/ARCHITECTURE.md section 10); model is that adapter.
        lib = open_library(path, options, heads=heads, device=device)
        return LoadedModel(lib, lib.adapter, Path(path), torch.device(device))  # type: ignore[arg-type]
    ckpt = load_with_options(path, options, heads=heads, **overrides)
    device = torch.device(device)
    return LoadedModel(ckpt, ckpt.build_model(device=device), Path(path), device)


def from_checkpoint(ckpt: Checkpoint, *, device: str | torch.device = "cpu") -> LoadedModel:
    device = torch.device(device)
    return LoadedModel(ckpt, ckpt.build_model(device=device), None, device)


@dataclass
class PreparedImage:
    """An image as the user gave it and as the model sees it.

    Attributes:
        original: ``(H, W, 3)`` uint8 as read from disk.
        display: ``(S, S, 3)`` uint8 after the model's resize/crop: the overlay's background.
        tensor: ``(1, 3, S, S)`` float32, normalised model input.
    """

    original: np.ndarray
    display: np.ndarray
    tensor: torch.Tensor
    path: Path | None = None


def prepare(image: np.ndarray, loaded: LoadedModel, path: Path | None = None) -> PreparedImage:
    display = prepare_image(image, loaded.checkpoint.preprocess)
    return PreparedImage(image, display, to_tensor(display, loaded.checkpoint.preprocess), path)


def load_image(path: str | os.PathLike, loaded: LoadedModel) -> PreparedImage:
    return prepare(read_image(path), loaded, Path(path))


def capture_image(loaded: LoadedModel, image: PreparedImage) -> Capture:
    """One forward pass; every later map is computed from this."""
    return capture(loaded.model, image.tensor, device=loaded.device)


# --------------------------------------------------------------------------------------------
# Added for the desktop inspector (gui): masks in display coordinates, the head/layer explorer.
# --------------------------------------------------------------------------------------------
@dataclass
class ExplorerMaps:
    """Everything the head/layer explorer draws for one query token.

    Attributes:
        maps: ``(L, H + 2, rows, cols)`` float32 in [0, 1]: per layer each head's attention row
            of the query, then the heads fused, then the rollout up to that layer; every cell is
            divided by its own maximum so that each thumbnail uses the whole colour range.
        raw: the same cells before that rescaling (attention probabilities; rollout weights).
        entropy: ``(L, H)`` Shannon entropy in nats of each head's attention row of the query,
            over all tokens: ``-sum_j p_j log p_j``, between 0 (one token) and ``log T``.
    """

    maps: np.ndarray
    raw: np.ndarray
    entropy: np.ndarray
    query: int
    fusion: str
    num_tokens: int

    @property
    def max_entropy(self) -> float:
        """``log T``: the entropy of a uniform attention row."""
        return float(np.log(self.num_tokens))


def explorer_maps(
    cap: Capture,
    *,
    query: int = 0,
    fusion: str = "mean",
    discard_ratio: float = 0.0,
    residual: bool | None = None,
    legacy_normalisation: bool = False,
) -> ExplorerMaps:
    """Per layer: every head's attention row of ``query``, the fused heads, and the rollout of
    layers ``0..l`` (``R_l = Ã_l ··· Ã_0``, row ``query``), for the explorer grid.

    Args:
        cap: the capture.
        query: query token (0 = class token).
        fusion: head fusion for the fused column and for rollout.
        discard_ratio: rollout's discard ratio.
        residual: rollout's identity; ``None`` follows the model.
        legacy_normalisation: vit-explain's column normalisation.
    """
    from .saliency import FUSIONS, rollout_layers

    if fusion not in FUSIONS:
        raise ValueError(f"unknown head fusion {fusion!r}; choose from: {', '.join(FUSIONS)}")
    attn = np.asarray(cap.attentions)  # (L, h, T, T), float32, not copied
    L, H, T, _ = attn.shape
    if not 0 <= query < T:
        raise ValueError(f"query token {query} is out of range (0..{T - 1})")
    p = cap.num_prefix_tokens
    rows, cols = cap.grid_size
    heads = attn[:, :, query, :].astype(np.float64)  # (L, h, T): the query's row per head
    # Fusing the heads of row q equals row q of the fused matrix (the fusion is elementwise).
    fused = {"mean": heads.mean(axis=1), "max": heads.max(axis=1), "min": heads.min(axis=1)}[
        fusion
    ]  # (L, T)
    mats = np.asarray(
        rollout_layers(
            attn,
            fusion=fusion,
            discard_ratio=discard_ratio,
            residual=cap.residual if residual is None else residual,
            legacy_normalisation=legacy_normalisation,
        )
    )  # (L, T, T)
    # Row q of R_l = Ã_l ··· Ã_0 as a vector chain, v <- v Ã_k for k = l..0: O(L^2 T^2) in all
    # instead of O(L T^3) for the matrix products.
    roll = np.empty((L, T))
    for layer in range(L):
        v = np.zeros(T)
        v[query] = 1.0
        for k in range(layer, -1, -1):
            v = v @ mats[k]
        roll[layer] = v
    cells = np.concatenate([heads, fused[:, None, :], roll[:, None, :]], axis=1)  # (L, h+2, T)
    raw = cells[..., p:].reshape(L, H + 2, rows, cols)
    top = raw.max(axis=(-2, -1), keepdims=True)
    maps = np.divide(raw, top, out=np.zeros_like(raw), where=top > 0)
    logp = np.log(heads, out=np.zeros_like(heads), where=heads > 0)
    entropy = -(heads * logp).sum(axis=-1)  # (L, h)
    return ExplorerMaps(
        maps.astype(np.float32),
        raw.astype(np.float32),
        entropy.astype(np.float32),
        int(query),
        fusion,
        int(T),
    )
