"""The checkpoint flags shared by ``explain``, ``evaluate``, ``convert`` and ``sanity``:
what a checkpoint file cannot tell (:class:`~inspector.core.load_options.LoadOptions`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_load_flags(p: argparse.ArgumentParser) -> None:
    """The flags for what a checkpoint file cannot tell (:class:`~inspector.core.load_options.
    LoadOptions`), shared by ``explain``, ``evaluate`` and ``convert``."""
    g = p.add_argument_group(
        "checkpoint options (what the file cannot tell; default: the family's convention)"
    )
    g.add_argument(
        "--heads",
        type=int,
        default=None,
        help="number of attention heads, for files that do not record it (the "
        "paper's layout without its file-name convention, non-standard widths)",
    )
    g.add_argument(
        "--class-names",
        type=Path,
        default=None,
        metavar="FILE",
        help="text file with one class name per line, in output order",
    )
    g.add_argument(
        "--normalisation",
        default="auto",
        choices=("auto", "imagenet", "half", "none"),
        help="input normalisation: imagenet mean/std, half = 0.5/0.5, none = 0/1",
    )
    g.add_argument(
        "--resize",
        default="auto",
        choices=("auto", "resize", "resize-crop"),
        help="resize the whole image, or resize the short side and centre-crop",
    )
    g.add_argument(
        "--image-size",
        type=int,
        default=None,
        metavar="N",
        help="run the model at N x N inputs: the position table is resampled",
    )
    g.add_argument(
        "--arch",
        default=None,
        metavar="NAME",
        help="the architecture where the weights cannot tell it: a timm model name "
        "(e.g. vit_base_patch16_clip_quickgelu_224) or open_clip:NAME (e.g. open_clip:ViT-B-32)",
    )
    g.add_argument(
        "--residual",
        default="auto",
        choices=("auto", "on", "off"),
        help="the paper's layout only: residual connections, when the file name "
        "does not say (default on)",
    )


def load_options_from_args(args: argparse.Namespace):
    """The :class:`~inspector.core.load_options.LoadOptions` the flags describe."""
    from ..core.load_options import LoadOptions

    return LoadOptions(
        heads=args.heads,
        class_names_file=args.class_names,
        normalisation=args.normalisation,
        policy=args.resize.replace("-", "_"),
        image_size=args.image_size,
        residual={"auto": None, "on": True, "off": False}[args.residual],
        arch=args.arch,
    )
