"""Pieces shared by the importers: the error type, hints, key bookkeeping, defaults.

Every converter turns a foreign ``state_dict`` into ``(ViTConfig, our_state_dict, meta)`` for
:class:`inspector.core.model.VisionTransformer`. This module holds what they all need:

* :class:`InteropError` -- every problem with a foreign file ends up as one, with a message
  that names the file's keys and shapes;
* :class:`Hints` -- what the user told us that the weights cannot (heads, residuals, ...);
* :class:`KeyReader` -- takes keys out of the source dict, remembers which source key fed
  which of our keys (for shape-mismatch messages) and which keys were never used;
* :func:`validate_against_model` -- compares the converted dict with the model the config
  describes (built on the ``meta`` device, so no memory and no random init is spent).
"""

from __future__ import annotations

import importlib.resources
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import expected_shapes
from ..config import ConfigError, Preprocess, ViTConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Standard ViT family (Dosovitskiy et al. 2021; DeiT; timm): hidden size -> heads.
# ViT-Ti 192/3, ViT-S 384/6, ViT-B 768/12, ViT-L 1024/16, ViT-H 1280/16.
STANDARD_HEADS: dict[int, int] = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16}

# The seed paper's 10 Tiny ImageNet classes, labels 0-9 (docs/ARCHITECTURE.md section 5).
PAPER_CLASSES: tuple[str, ...] = (
    "goldfish",
    "European fire salamander",
    "bullfrog",
    "tailed frog",
    "American alligator",
    "boa constrictor",
    "trilobite",
    "scorpion",
    "black widow",
    "tarantula",
)

HEADLESS_CLASS_NAME = "(no classifier head)"


class InteropError(ValueError):
    """A foreign checkpoint cannot be read or mapped onto our VisionTransformer."""


@dataclass(frozen=True)
class Hints:
    """What the user (CLI flags, load dialog) says about a file that the weights cannot.

    Args:
        heads: number of attention heads; overrides the family table and the file name.
        residual: the paper's layout only -- whether the blocks have residual connections
            (invisible in the weights; the file name convention carries it).
        pos_encoding: the paper's layout only -- ``sincos`` / ``learned`` / ``integer``.
        path: the file being imported (its name and folder are read for conventions and for
            Hugging Face's ``config.json`` / ``preprocessor_config.json``).
    """

    heads: int | None = None
    residual: bool | None = None
    pos_encoding: str | None = None
    path: Path | None = None


@dataclass
class Meta:
    """What a converter learnt besides config and weights.

    ``key_map`` maps each of our keys to the source key(s) it came from; ``notes`` are
    human-readable remarks (assumptions made, parts ignored) to show the user and to keep in
    the provenance.
    """

    family: str
    preprocess: Preprocess
    class_names: list[str] | None = None  # None -> the default for the head size
    headless: bool = False
    notes: list[str] = field(default_factory=list)
    key_map: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "headless": self.headless, "notes": list(self.notes)}


def fmt_shape(shape: Iterable[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def summarise(keys: Iterable[str], limit: int = 10) -> str:
    """``'a', 'b', ... (and 12 more)`` -- long key lists stay readable in a message."""
    keys = list(keys)
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" ... (and {len(keys) - limit} more)" if len(keys) > limit else "")


class KeyReader:
    """Reads tensors out of a source state dict and records where each of ours came from.

    Args:
        source: the foreign state dict (after unwrapping).
        family: its family name, used in messages.
    """

    def __init__(self, source: Mapping[str, torch.Tensor], family: str) -> None:
        self.source = source
        self.family = family
        self.used: set[str] = set()
        self.out: dict[str, torch.Tensor] = {}
        self.key_map: dict[str, str] = {}

    def has(self, key: str) -> bool:
        return key in self.source

    def get(self, key: str) -> torch.Tensor:
        """The tensor under ``key``; a missing key is an :class:`InteropError` naming it."""
        if key not in self.source:
            raise InteropError(
                f"{self.family} checkpoint is missing the key {key!r} "
                f"(it has {len(self.source)} keys, e.g. {summarise(sorted(self.source), 5)})"
            )
        self.used.add(key)
        return self.source[key]

    def put(self, ours: str, tensor: torch.Tensor, *sources: str) -> None:
        self.out[ours] = tensor
        self.key_map[ours] = " + ".join(sources)

    def copy(self, ours: str, src: str) -> None:
        self.put(ours, self.get(src), src)

    def copy_optional(self, ours: str, src: str) -> bool:
        if src in self.source:
            self.copy(ours, src)
            return True
        return False

    def ignore(self, pattern: str) -> list[str]:
        """Mark keys matching the regex ``pattern`` as deliberately unused; returns them."""
        rx = re.compile(pattern)
        hits = [k for k in self.source if rx.fullmatch(k)]
        self.used.update(hits)
        return hits

    def check_all_used(self) -> None:
        """Keys nobody read mean a variant we would silently get wrong: refuse it."""
        left = sorted(set(self.source) - self.used)
        if left:
            raise InteropError(
                f"{self.family} checkpoint has {len(left)} key(s) this importer does not know "
                f"how to map, so the model would not be faithful: {summarise(left)}. "
                "Variants with extra parts (register tokens, layer scale, pre-logits layers, "
                "global-average pooling norms, ...) are not supported."
            )


def count_blocks(keys: Iterable[str], pattern: str) -> int:
    """Number of blocks: one more than the largest index captured by ``pattern``'s group 1;
    indices must run 0..n-1 without gaps."""
    rx = re.compile(pattern)
    idx = sorted({int(m.group(1)) for k in keys if (m := rx.match(k))})
    if not idx:
        raise InteropError(f"no encoder blocks found (no key matches {pattern!r})")
    if idx != list(range(len(idx))):
        missing = sorted(set(range(idx[-1] + 1)) - set(idx))
        raise InteropError(f"encoder block indices are not contiguous; missing {missing}")
    return len(idx)


def infer_heads(hidden: int, hints: Hints, family: str) -> tuple[int, str]:
    """Heads from the hint, else the standard ViT table by hidden size.

    Returns:
        ``(heads, note)`` where ``note`` says where the number came from.
    """
    if hints.heads is not None:
        return hints.heads, f"heads = {hints.heads} (given by the user)"
    if hidden in STANDARD_HEADS:
        h = STANDARD_HEADS[hidden]
        return h, (
            f"heads = {h}: not stored in {family} weights, taken from the standard ViT "
            f"table for hidden size {hidden} (override with heads=/--heads)"
        )
    raise InteropError(
        f"the number of attention heads is not stored in {family} weights and hidden size "
        f"{hidden} is not a standard ViT width ({sorted(STANDARD_HEADS)}); "
        "give it with heads=N (CLI --heads N, or the load dialog)"
    )


def grid_from_tokens(num_tokens: int, prefix: int, key: str, shape: Iterable[int]) -> int:
    """Patch-grid side from a position table of ``num_tokens`` rows with ``prefix`` tokens."""
    n = num_tokens - prefix
    g = int(round(n**0.5))
    if n < 1 or g * g != n:
        raise InteropError(
            f"{key} has shape {fmt_shape(shape)}: {num_tokens} positions minus {prefix} prefix "
            "token(s) is not a square patch grid (position tables without prefix tokens, "
            "non-square inputs and register tokens are not supported)"
        )
    return g


def make_config(**fields: Any) -> ViTConfig:
    try:
        return ViTConfig(**fields)
    except ConfigError as exc:
        raise InteropError(f"the inferred architecture is inconsistent: {exc}") from exc


def validate_against_model(
    cfg: ViTConfig, state: Mapping[str, torch.Tensor], key_map: Mapping[str, str], family: str
) -> None:
    """Every key our model expects is present with the expected shape, and nothing else.

    The model is built on the ``meta`` device: shapes only, no memory, no random init cost.
    Errors name our key, the file's key it came from, and both shapes.
    """
    expected = expected_shapes(cfg)
    missing = [k for k in expected if k not in state]
    if missing:
        raise InteropError(f"{family} import produced no value for {summarise(missing)}")
    extra = [k for k in state if k not in expected]
    if extra:
        raise InteropError(f"{family} import produced unexpected keys {summarise(extra)}")
    for k, ref in expected.items():
        got = state[k]
        if tuple(got.shape) != ref:
            src = key_map.get(k, k)
            raise InteropError(
                f"shape mismatch for {src!r} (our {k!r}): the file has {fmt_shape(got.shape)}, "
                f"a model with the inferred architecture expects {fmt_shape(ref)} "
                f"(inferred: hidden {cfg.hidden_size}, depth {cfg.depth}, heads {cfg.num_heads}, "
                f"mlp {cfg.mlp_dim}, classes {cfg.num_classes}, image {cfg.image_size}, "
                f"patch {cfg.patch_size})"
            )


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names shipped in ``inspector/resources/imagenet_classes.txt``
    (generated once from torchvision's ``_IMAGENET_CATEGORIES``, index order)."""
    ref = importlib.resources.files("inspector") / "resources" / "imagenet_classes.txt"
    names = tuple(ref.read_text(encoding="utf-8").splitlines())
    if len(names) != 1000:
        raise InteropError(f"resource imagenet_classes.txt has {len(names)} lines, expected 1000")
    return names


def default_class_names(num_classes: int, family: str) -> list[str]:
    """ImageNet-1k names for a 1000-way head, the paper's classes for its 10-way head,
    otherwise ``class_0 .. class_{n-1}``."""
    if num_classes == 1000:
        return list(imagenet_class_names())
    if family == "paper" and num_classes == len(PAPER_CLASSES):
        return list(PAPER_CLASSES)
    return [f"class_{i}" for i in range(num_classes)]


def imagenet_preprocess(image_size: int, crop_pct: float, interpolation: str) -> Preprocess:
    """The ImageNet evaluation convention: resize the short side to ``image_size / crop_pct``,
    centre-crop ``image_size``, normalise with the ImageNet mean/std."""
    # floor, as timm does (224 / 0.875 = 256); the epsilon absorbs float error in crop_pct.
    return Preprocess(
        image_size=image_size,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        policy="resize_crop",
        resize_size=math.floor(image_size / crop_pct + 1e-6),
        interpolation=interpolation,
    )  # type: ignore[arg-type]


def as_float32(state: dict[str, torch.Tensor], notes: list[str]) -> dict[str, torch.Tensor]:
    """Half / bfloat16 / float64 weights become float32 (our model's dtype), with a note."""
    converted = set()
    for k, t in state.items():
        if t.is_floating_point() and t.dtype != torch.float32:
            converted.add(str(t.dtype).replace("torch.", ""))
            state[k] = t.float()
    if converted:
        notes.append(f"weights stored as {', '.join(sorted(converted))} were converted to float32")
    return state
