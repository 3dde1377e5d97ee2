"""Sorting dropped or chosen paths into checkpoints, images, masks and folders (no Qt)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from inspector.core.imageio import is_image_file

__all__ = ["CHECKPOINT_SUFFIXES", "DroppedPaths", "classify_paths", "looks_like_mask"]

#: Suffixes of the checkpoint formats the app can open (ours and foreign ViTs).
CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pt", ".pth", ".bin", ".safetensors", ".ckpt", ".tar")

_MASK_WORDS = ("_mask", "-mask", ".mask", "_seg", "-seg", "_gt")


def looks_like_mask(path: Path) -> bool:
    """A mask image by its name: ``<stem>_mask.png`` (our samples), ``-mask``, ``_seg``, ``_gt``,
    or any image inside a folder called ``masks``."""
    stem = path.stem.lower()
    return (
        any(stem.endswith(w) for w in _MASK_WORDS)
        or stem == "mask"
        or path.parent.name.lower() in ("mask", "masks")
    )


@dataclass
class DroppedPaths:
    checkpoints: list[Path] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    masks: list[Path] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    unsupported: list[Path] = field(default_factory=list)


def classify_paths(paths: list[Path]) -> DroppedPaths:
    """Sort ``paths`` by what they are (by name and suffix; contents are checked on opening)."""
    out = DroppedPaths()
    for p in paths:
        if p.is_dir():
            out.folders.append(p)
        elif p.suffix.lower() in CHECKPOINT_SUFFIXES:
            out.checkpoints.append(p)
        elif is_image_file(p):
            (out.masks if looks_like_mask(p) else out.images).append(p)
        else:
            out.unsupported.append(p)
    return out
