"""``vit-inspector explain`` and ``vit-inspector evaluate``: saliency maps and their scores."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .cli_progress import ProgressBar


def add_explain(sub: argparse._SubParsersAction) -> None:
    from .core.postprocess import COLORMAPS
    from .core.saliency import AGGREGATIONS, FUSIONS, METHODS

    p = sub.add_parser(
        "explain",
        help="saliency maps, predictions and mask scores for images",
        description="For each image write <stem>_<method>.png (overlay), <stem>_<method>.npy "
        "(patch-grid map, float32), <stem>.json (top-5 predictions, settings, SMM "
        "and localisation metrics when a mask is given) and with --save-attention "
        "<stem>_attention.npy ([layers, heads, T, T], float32).",
    )
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--image", required=True, nargs="+", type=Path)
    p.add_argument("--method", default="rollout", choices=METHODS)
    p.add_argument(
        "--fusion", default="max", choices=FUSIONS, help="head fusion for rollout / attention"
    )
    p.add_argument(
        "--aggregation",
        default="mean",
        choices=AGGREGATIONS,
        help="head aggregation for cls-attention",
    )
    p.add_argument("--discard", type=float, default=0.9, help="discard ratio in [0, 1)")
    p.add_argument(
        "--class",
        dest="class_index",
        type=int,
        default=None,
        help="target class for gradient methods (default: the predicted class)",
    )
    p.add_argument("--layer", type=int, default=-1, help="layer for --method attention")
    p.add_argument("--head", type=int, default=None, help="head for --method attention")
    p.add_argument("--query", type=int, default=0, help="query token (0 = class token)")
    p.add_argument("--start-layer", type=int, default=0)
    p.add_argument(
        "--legacy-normalisation",
        action="store_true",
        help="reproduce vit-explain's column normalisation (old figures)",
    )
    p.add_argument("--smooth", choices=("none", "paper"), default="none")
    p.add_argument(
        "--mask",
        nargs="+",
        type=Path,
        default=None,
        help="object mask image(s), one per --image (non-zero = object)",
    )
    p.add_argument("--threshold", type=float, default=0.3, help="SMM threshold")
    p.add_argument("--cmap", default="jet", choices=sorted(COLORMAPS))
    p.add_argument("--opacity", type=float, default=0.5)
    p.add_argument("--device", default="auto")
    p.add_argument("--save-attention", action="store_true")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--out", required=True, type=Path)
    add_load_flags(p)
    p.set_defaults(func=cmd_explain)


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
        "--residual",
        default="auto",
        choices=("auto", "on", "off"),
        help="the paper's layout only: residual connections, when the file name "
        "does not say (default on)",
    )


def load_options_from_args(args: argparse.Namespace):
    """The :class:`~inspector.core.load_options.LoadOptions` the flags describe."""
    from .core.load_options import LoadOptions

    return LoadOptions(
        heads=args.heads,
        class_names_file=args.class_names,
        normalisation=args.normalisation,
        policy=args.resize.replace("-", "_"),
        image_size=args.image_size,
        residual={"auto": None, "on": True, "off": False}[args.residual],
    )


def _map_settings(args: argparse.Namespace):
    from .core.saliency import MapSettings

    return MapSettings(
        method=args.method,
        fusion=args.fusion,
        discard_ratio=args.discard,
        layer=args.layer,
        head=args.head,
        query=args.query,
        start_layer=args.start_layer,
        legacy_normalisation=args.legacy_normalisation,
        class_index=args.class_index,
        aggregation=args.aggregation,
    )


def cmd_explain(args: argparse.Namespace) -> int:
    from .cli import CLIError
    from .core.explain import capture_image, load_image, open_model, saliency_image
    from .core.export import check_writable, save_json, save_npy, save_png
    from .core.imageio import read_mask
    from .core.metrics import localisation_metrics
    from .core.postprocess import overlay
    from .core.train import resolve_device

    if args.mask is not None and len(args.mask) != len(args.image):
        raise CLIError(
            f"got {len(args.mask)} --mask file(s) for {len(args.image)} image(s); "
            f"give one mask per image"
        )
    if not 0.0 <= args.threshold <= 1.0:
        raise CLIError(f"--threshold must be in [0, 1], got {args.threshold}")
    settings = _map_settings(args)
    stems = [p.stem for p in args.image]
    if len(set(stems)) != len(stems):
        raise CLIError("two --image files share a name; outputs would collide")
    targets = []
    for stem in stems:
        targets += [
            args.out / f"{stem}_{args.method}.png",
            args.out / f"{stem}_{args.method}.npy",
            args.out / f"{stem}.json",
        ]
        if args.save_attention:
            targets.append(args.out / f"{stem}_attention.npy")
    check_writable(targets, overwrite=args.overwrite)

    loaded = open_model(
        args.checkpoint, device=resolve_device(args.device), options=load_options_from_args(args)
    )
    cfg = loaded.checkpoint.config
    args.out.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(args.image):
        image = load_image(path, loaded)
        cap = capture_image(loaded, image)
        grid, full = saliency_image(
            cap,
            settings,
            image_size=cfg.image_size,
            patch_size=cfg.patch_size,
            smoothing=args.smooth,
        )
        record: dict[str, Any] = {
            "image": str(path),
            "checkpoint": str(args.checkpoint),
            "predictions": [
                {"class": c, "name": loaded.class_names[c], "probability": p}
                for c, p in cap.top_k(5)
            ],
            "settings": {
                **settings.to_dict(),
                "smoothing": args.smooth,
                "threshold": args.threshold,
            },
            "target_class": cap.resolve_class(args.class_index),
        }
        if args.mask is not None:
            mask = read_mask(args.mask[i], size=image.display.shape[:2])
            record["mask"] = str(args.mask[i])
            record["metrics"] = localisation_metrics(full, mask, threshold=args.threshold)
        stem = path.stem
        picture = overlay(image.display, full, cmap=args.cmap, opacity=args.opacity)
        save_png(args.out / f"{stem}_{args.method}.png", picture, record, overwrite=args.overwrite)
        save_npy(
            args.out / f"{stem}_{args.method}.npy",
            grid.astype(np.float32),
            overwrite=args.overwrite,
        )
        if args.save_attention:
            save_npy(
                args.out / f"{stem}_attention.npy",
                cap.attentions.numpy().astype(np.float32),
                overwrite=args.overwrite,
            )
        save_json(args.out / f"{stem}.json", record, overwrite=args.overwrite)
        top = record["predictions"][0]
        smm_text = ""
        if "metrics" in record:
            value = record["metrics"]["smm"]
            smm_text = f", SMM {value:.3f}" if value is not None else ", SMM undefined"
        print(f"{path.name}: {top['name']} ({top['probability']:.3f}){smm_text}")
    return 0


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    from .core.saliency import METHODS

    p = sub.add_parser(
        "evaluate",
        help="accuracy and saliency metrics of a checkpoint over a dataset",
        description="Writes per_image.csv and summary.json / summary.md into --out.",
    )
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument(
        "--data",
        required=True,
        help="'synthetic', a Tiny ImageNet folder, or an image folder (with masks)",
    )
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0, help="synthetic data seed")
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument(
        "--methods",
        default="rollout,grad-rollout,relevance,cls-attention",
        help=f"comma-separated, from: {', '.join(METHODS)}",
    )
    p.add_argument("--fusion", default="max")
    p.add_argument("--discard", type=float, default=0.9)
    p.add_argument("--smooth", choices=("none", "paper"), default="none")
    p.add_argument("--threshold", type=float, default=0.3)
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument(
        "--faithfulness",
        type=int,
        default=0,
        metavar="STEPS",
        help="also deletion / insertion AUC (RISE) with this many steps, e.g. 32",
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--out", required=True, type=Path)
    add_load_flags(p)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .cli import CLIError
    from .core.data import load_dataset
    from .core.evaluation import evaluate_saliency, write_evaluation
    from .core.explain import open_model
    from .core.export import check_writable
    from .core.saliency import METHODS, MapSettings
    from .core.train import resolve_device

    if args.faithfulness < 0:
        raise CLIError(f"--faithfulness must be >= 0 steps, got {args.faithfulness}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise CLIError(
            f"unknown method(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(METHODS)}"
        )
    outputs = [args.out / n for n in ("per_image.csv", "summary.json", "summary.md")]
    check_writable(outputs, overwrite=args.overwrite)
    loaded = open_model(
        args.checkpoint, device=resolve_device(args.device), options=load_options_from_args(args)
    )
    data = load_dataset(args.data, classes=args.classes, seed=args.seed).split(args.split)
    if args.limit is not None:
        data = data.subset(list(range(min(args.limit, len(data)))))
    if data.num_classes != len(loaded.class_names):
        print(
            f"warning: the dataset has {data.num_classes} classes, the model "
            f"{len(loaded.class_names)}; labels are compared by index",
            file=sys.stderr,
        )
    settings = MapSettings(fusion=args.fusion, discard_ratio=args.discard)
    bar = ProgressBar(total=len(data))
    result = evaluate_saliency(
        loaded,
        data,
        methods,
        settings,
        smoothing=args.smooth,
        threshold=args.threshold,
        batch_size=args.batch_size,
        faithfulness_steps=args.faithfulness,
        progress=lambda done, text: bar.update(done, text),
    )
    bar.close()
    args.out.mkdir(parents=True, exist_ok=True)
    write_evaluation(result, args.out, overwrite=args.overwrite)
    print(result.summary_markdown())
    return 0
