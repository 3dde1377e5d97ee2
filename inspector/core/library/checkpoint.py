"""What an opened library model is: :class:`LibraryCheckpoint`, which stands where our
:class:`~inspector.core.checkpoint.Checkpoint` stands for the rest of the app (``config``,
``class_names``, ``preprocess``, ``provenance``, ``build_model`` -> the capture adapter)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..config import Preprocess
from ..token_layout import TokenLayout

__all__ = ["HEADLESS", "LibraryCheckpoint", "LibraryConfig", "preprocess_from"]

HEADLESS = "(no classifier head)"


@dataclass(frozen=True)
class LibraryConfig:
    """The sizes of a library model, named as :class:`~inspector.core.config.ViTConfig`'s."""

    family: str
    arch: str
    depth: int
    num_heads: int
    hidden_size: int
    image_size: int
    patch_size: int
    num_classes: int
    num_prefix_tokens: int
    grid: tuple[int, int]
    residual: bool = True
    output_softmax: bool = False

    @property
    def grid_size(self) -> int:
        return self.grid[0]

    @property
    def num_tokens(self) -> int:
        return self.num_prefix_tokens + self.grid[0] * self.grid[1]


@dataclass(eq=False)
class LibraryCheckpoint:
    """A library model ready to inspect (see the module text)."""

    config: LibraryConfig
    adapter: Any
    class_names: list[str]
    preprocess: Preprocess
    token_layout: TokenLayout
    provenance: dict[str, Any] = field(default_factory=dict)
    # The text tower of CLIP-like models (:class:`~inspector.core.library.clip.ClipText`).
    text: Any = None

    @property
    def headless(self) -> bool:
        return bool(getattr(self.adapter, "headless", False))

    def build_model(self, device: str | torch.device = "cpu") -> Any:
        self.adapter.model.to(device)
        return self.adapter


def preprocess_from(cfg: Mapping[str, Any], image_size: int) -> Preprocess:
    """timm's ``pretrained_cfg`` (mean, std, crop_pct, interpolation) as our Preprocess."""
    crop = float(cfg.get("crop_pct") or 1.0)
    interp = cfg.get("interpolation", "bicubic")
    mean = tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406)))
    std = tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225)))
    return Preprocess(
        image_size=image_size,
        mean=mean,  # type: ignore[arg-type]
        std=std,  # type: ignore[arg-type]
        policy="resize_crop" if crop < 1.0 else "resize",
        resize_size=math.floor(image_size / crop + 1e-6) if crop < 1.0 else None,
        interpolation=interp if interp in ("bilinear", "bicubic") else "bicubic",
    )
