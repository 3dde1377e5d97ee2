"""What the user says about a checkpoint that its file cannot tell: one value the CLI flags and
the GUI load dialog both produce, and one place that turns it into an opened checkpoint.

A foreign file (issue 4) does not always record the number of attention heads (the seed paper's
layout), how its inputs were normalised, how images were resized or cropped, or its class
names. The importers (:mod:`inspector.core.interop`) pick a sensible default per family; a
:class:`LoadOptions` overrides any of them:

* ``heads`` and ``residual`` go to :func:`~inspector.core.interop.open_checkpoint` (they change
  the architecture, so they must be known while the weights are mapped);
* ``class_names`` / ``class_names_file`` too (checked there against the head's size);
* ``normalisation`` and ``policy`` replace fields of the family's
  :class:`~inspector.core.config.Preprocess` after the import (only then is the input size
  known): ``imagenet`` = mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225) (ImageNet
  statistics, the timm / torchvision convention); ``half`` = mean 0.5, std 0.5 (inputs in
  [-1, 1], the Hugging Face ViT convention and ours); ``none`` = mean 0, std 1 (plain
  ``ToTensor()`` inputs in [0, 1], the seed paper's);
* ``image_size`` resamples the position table for another input size
  (:func:`~inspector.core.interop.resample_pos_embed`).

The options given are recorded in ``ckpt.provenance["load_options"]``, so saving the model in
our format ("Save as", ``vit-inspector convert``) keeps them next to the values they produced.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch

from .checkpoint import Checkpoint
from .config import Preprocess

__all__ = [
    "NORMALISATIONS",
    "POLICIES",
    "LoadOptions",
    "LoadOptionsError",
    "apply_options",
    "describe",
    "load_with_options",
    "needs_heads",
    "read_class_names",
]

Normalisation = Literal["auto", "imagenet", "half", "none"]
Policy = Literal["auto", "resize", "resize_crop"]

# name -> (mean, std) per channel; "auto" keeps the family's default.
NORMALISATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}
POLICIES = ("auto", "resize", "resize_crop")
MAX_IMAGE_SIZE = 8192  # an input side; the patch count below is the binding limit
# 32 x 32 patches: ViT-B's 12 layers x 12 heads of (1025 x 1025) attention are ~0.6 GB.
MAX_PATCHES = 1024

# The importers' wording when the heads cannot be known (interop.common.infer_heads and
# interop.from_paper.convert): "the number of attention heads is not ... heads=N".
_HEADS_UNKNOWN = re.compile(r"number of attention heads is not .*heads=N", re.DOTALL)


class LoadOptionsError(ValueError):
    """A load option is invalid or contradicts the checkpoint."""


def needs_heads(message: str) -> bool:
    """True when an import failed only because the number of heads is unknown (the user can
    answer it: ``--heads`` or the load dialog)."""
    return bool(_HEADS_UNKNOWN.search(message))


def read_class_names(path: str | os.PathLike) -> list[str]:
    """One class name per line, in output order (UTF-8; surrounding spaces and trailing blank
    lines are dropped; a blank line in between is an error, since it would shift every later
    index).

    Raises:
        LoadOptionsError: the file is missing, unreadable, empty or has a blank line inside.
    """
    p = Path(path)
    # A FIFO would block the read for ever, a device never end: regular files only.
    if p.exists() and not p.is_file():
        raise LoadOptionsError(f"class names file {p} is not a regular file")
    if p.is_file() and p.stat().st_size > 16 * 1024 * 1024:
        raise LoadOptionsError(f"class names file {p} is over 16 MB: not a list of names")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LoadOptionsError(f"class names file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadOptionsError(f"cannot read class names file {p}: {exc}") from exc
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise LoadOptionsError(f"class names file {p} is empty; write one name per line")
    blank = [i + 1 for i, n in enumerate(names) if not n]
    if blank:
        raise LoadOptionsError(
            f"class names file {p} has a blank line at line {blank[0]}; "
            "write exactly one name per line, in output order"
        )
    return names


@dataclass(frozen=True)
class LoadOptions:
    """Overrides for what a checkpoint file cannot tell; ``None`` / ``"auto"`` = the default.

    Args:
        heads: attention heads (the paper's layout when its file name does not carry them, or
            a timm / torchvision file of non-standard width).
        class_names: one name per output, in order.
        class_names_file: a text file with one name per line (used when ``class_names`` is
            None).
        normalisation: ``auto`` | ``imagenet`` | ``half`` | ``none`` (see the module text).
        policy: ``auto`` | ``resize`` (whole image to S x S) | ``resize_crop`` (short side to
            the family's resize size, default S / 0.875, then a centre S x S crop).
        image_size: run the model at this input side; the position table is resampled.
        residual: the paper's layout only, when the file name does not say.
        arch: the library architecture where the weights cannot tell it: a timm model name
            (``vit_small_patch14_reg4_dinov2``) or ``open_clip:NAME`` (``open_clip:ViT-B-32``);
            the model then runs as the library's own module (:mod:`inspector.core.library`).
    """

    heads: int | None = None
    class_names: tuple[str, ...] | None = None
    class_names_file: Path | None = None
    normalisation: Normalisation = "auto"
    policy: Policy = "auto"
    image_size: int | None = None
    residual: bool | None = None
    arch: str | None = None

    def __post_init__(self) -> None:
        if self.heads is not None and (not isinstance(self.heads, int) or self.heads < 1):
            raise LoadOptionsError(f"heads must be a positive whole number, got {self.heads!r}")
        if self.normalisation not in ("auto", *NORMALISATIONS):
            raise LoadOptionsError(
                f"unknown normalisation {self.normalisation!r}; choose from "
                f"auto, {', '.join(NORMALISATIONS)}"
            )
        if self.policy not in POLICIES:
            raise LoadOptionsError(
                f"unknown resize policy {self.policy!r}; choose from {', '.join(POLICIES)}"
            )
        if self.image_size is not None and (
            not isinstance(self.image_size, int) or not 1 <= self.image_size <= MAX_IMAGE_SIZE
        ):
            raise LoadOptionsError(
                f"image size must be a whole number from 1 to {MAX_IMAGE_SIZE}, got "
                f"{self.image_size!r}"
            )
        if self.arch is not None and (not isinstance(self.arch, str) or not self.arch.strip()):
            raise LoadOptionsError(f"arch must be a model name, got {self.arch!r}")
        if self.class_names is not None:
            names = tuple(str(n) for n in self.class_names)
            if not names:
                raise LoadOptionsError("class names are empty")
            object.__setattr__(self, "class_names", names)
        if self.class_names_file is not None:
            object.__setattr__(self, "class_names_file", Path(self.class_names_file))

    @property
    def is_default(self) -> bool:
        return self == LoadOptions()

    def resolved_class_names(self) -> list[str] | None:
        """The explicit names, else the file's, else None (the family default)."""
        if self.class_names is not None:
            return list(self.class_names)
        if self.class_names_file is not None:
            return read_class_names(self.class_names_file)
        return None

    def to_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`inspector.core.interop.open_checkpoint` (the options
        needed while the weights are mapped; the rest is :func:`apply_options`)."""
        kwargs: dict[str, Any] = {}
        if self.heads is not None:
            kwargs["heads"] = self.heads
        if self.residual is not None:
            kwargs["residual"] = self.residual
        names = self.resolved_class_names()
        if names is not None:
            kwargs["class_names"] = names
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (stored in the checkpoint's provenance)."""
        return {
            "heads": self.heads,
            "class_names_file": str(self.class_names_file) if self.class_names_file else None,
            "class_names_given": self.class_names is not None,
            "normalisation": self.normalisation,
            "policy": self.policy,
            "image_size": self.image_size,
            "residual": self.residual,
            "arch": self.arch,
        }


def _preprocess_with(pre: Preprocess, options: LoadOptions) -> Preprocess:
    changes: dict[str, Any] = {}
    if options.normalisation != "auto":
        changes["mean"], changes["std"] = NORMALISATIONS[options.normalisation]
    if options.policy == "resize":
        changes.update(policy="resize", resize_size=None)
    elif options.policy == "resize_crop" and pre.policy != "resize_crop":
        changes.update(policy="resize_crop", resize_size=None)  # None: S / 0.875
    return replace(pre, **changes) if changes else pre


def apply_options(ckpt: Checkpoint, options: LoadOptions) -> Checkpoint:
    """The options that act after the import: preprocessing, resampling, provenance; and a
    check that ``heads`` / ``residual`` agree with a checkpoint that records them (our own
    format ignores those hints, so a contradiction would otherwise pass silently).

    Args:
        ckpt: the opened checkpoint (not modified).
        options: the user's options.

    Returns:
        A new checkpoint (weights shared, except a resampled position table).

    Raises:
        LoadOptionsError: heads / residual contradict the checkpoint.
        InteropError: ``image_size`` is not a multiple of the patch size.
    """
    from .interop import resample_pos_embed

    cfg = ckpt.config
    if options.heads is not None and options.heads != cfg.num_heads:
        raise LoadOptionsError(
            f"{options.heads} heads were given (--heads / the load "
            f"dialog) but the checkpoint records {cfg.num_heads} heads"
        )
    if options.residual is not None and options.residual != cfg.residual:
        raise LoadOptionsError(
            f"residual connections {'on' if options.residual else 'off'} were "
            f"given (--residual / the load dialog) but the checkpoint "
            f"records them {'on' if cfg.residual else 'off'}"
        )
    out = Checkpoint(
        config=cfg,
        state_dict=dict(ckpt.state_dict),
        class_names=list(ckpt.class_names),
        preprocess=_preprocess_with(ckpt.preprocess, options),
        train_config=ckpt.train_config,
        history=list(ckpt.history),
        provenance=dict(ckpt.provenance),
    )
    if options.image_size is not None and options.image_size != cfg.image_size:
        _check_patches(options.image_size, cfg.image_size, cfg.patch_size)
        out = resample_pos_embed(out, options.image_size)
    if not options.is_default:
        out.provenance["load_options"] = options.to_dict()
    return out


def _check_patches(size: int, native: int, patch: int) -> None:
    """Refuse an input size whose token count would not fit: every layer's attention is
    captured as ``(heads, T, T)`` floats, so memory grows with the 4th power of the side."""
    patches = (size // patch) ** 2
    allowed = max(MAX_PATCHES, (native // patch) ** 2)
    if patches > allowed:
        side = int(allowed**0.5) * patch
        raise LoadOptionsError(
            f"image size {size} gives {patches} patches of {patch} px; at most {allowed} "
            f"are supported (an image size up to {side})"
        )


def load_with_options(
    path: str | os.PathLike,
    options: LoadOptions | None = None,
    *,
    device: str | torch.device = "cpu",
    **overrides: Any,
) -> Checkpoint:
    """Open any supported checkpoint with the user's options applied.

    Args:
        path: the checkpoint file (ours or a foreign ViT's).
        options: the user's options (None = all defaults).
        device: where the weights go.
        **overrides: further :func:`~inspector.core.interop.open_checkpoint` arguments
            (``heads``, ``class_names``, ``preprocess``, ``residual``, ``pos_encoding``) and
            ``image_size`` (resampling); given (non-None) values win over ``options``.

    Raises:
        InteropError, LoadOptionsError: (both ``ValueError``) with a message for the user.
    """
    from .interop import open_checkpoint

    options = options or LoadOptions()
    image_size = overrides.pop("image_size", None)
    if image_size is not None:
        options = replace(options, image_size=image_size)
    kwargs = {**options.to_kwargs(), **{k: v for k, v in overrides.items() if v is not None}}
    ckpt = open_checkpoint(path, device=device, **kwargs)
    return apply_options(ckpt, options)


def describe(ckpt: Checkpoint) -> str:
    """One line about what was opened: family, size, input pipeline (for the CLI)."""
    cfg, pre = ckpt.config, ckpt.preprocess
    family = ckpt.provenance.get("imported_from", "vit-inspector")
    crop = (
        f"resize {pre.resize_size or 'S/0.875'} + crop" if pre.policy == "resize_crop" else "resize"
    )
    return (
        f"{family}: {cfg.depth} blocks x {cfg.num_heads} heads, width {cfg.hidden_size}, "
        f"{cfg.image_size}px / patch {cfg.patch_size}, {cfg.num_classes} classes; input "
        f"{crop}, mean {_fmt(pre.mean)} std {_fmt(pre.std)}"
    )


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"
