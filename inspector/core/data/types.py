"""The in-memory dataset every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ImageDataset:
    """Decoded images kept in memory as tensors (no per-step file decoding).

    Attributes:
        images: ``(N, 3, H, W)`` uint8 RGB.
        labels: ``(N,)`` int64 class indices into ``class_names``.
        masks: ``(N, H, W)`` bool object masks (exact for synthetic data, boxes for Tiny
            ImageNet), or ``None`` when the source has none.
        class_names: human-readable name per class index.
        ids: one identifier per image (file name or ``synthetic/<split>/<index>``).
    """

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor | None
    class_names: list[str]
    ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(
                f"images must be (N, 3, H, W) uint8, got {tuple(self.images.shape)} "
                f"{self.images.dtype}"
            )
        if self.labels.shape != (n,):
            raise ValueError(f"labels must be ({n},), got {tuple(self.labels.shape)}")
        if self.masks is not None and self.masks.shape != (n, *self.images.shape[2:]):
            raise ValueError(f"masks must be ({n}, H, W), got {tuple(self.masks.shape)}")
        if not self.ids:
            self.ids = [str(i) for i in range(n)]

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, index: torch.Tensor | list[int]) -> ImageDataset:
        index = torch.as_tensor(index, dtype=torch.long)
        return ImageDataset(
            images=self.images[index],
            labels=self.labels[index],
            masks=None if self.masks is None else self.masks[index],
            class_names=list(self.class_names),
            ids=[self.ids[i] for i in index.tolist()],
        )


@dataclass
class DatasetSplits:
    """Train / validation / test splits of one source, with a description for provenance."""

    train: ImageDataset
    val: ImageDataset
    test: ImageDataset
    source: dict = field(default_factory=dict)  # e.g. {"kind": "synthetic", "seed": 0}

    @property
    def class_names(self) -> list[str]:
        return self.train.class_names

    def split(self, name: str) -> ImageDataset:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; choose train, val or test")
        return getattr(self, name)
