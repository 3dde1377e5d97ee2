"""``vit-inspector evaluate``: accuracy and saliency metrics of a checkpoint over a dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .load_flags import add_load_flags, load_options_from_args
from .progress import ProgressBar


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    from ..core.saliency import METHODS, TARGETS

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
    p.add_argument(
        "--classes", type=int, default=None, help="default 10, or all of an image folder's"
    )
    p.add_argument("--seed", type=int, default=0, help="synthetic data seed")
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument(
        "--methods",
        default="rollout,grad-rollout,relevance,cls-attention",
        help=f"comma-separated, from: {', '.join(METHODS)}",
    )
    p.add_argument("--fusion", default="max")
    p.add_argument("--discard", type=float, default=0.9)
    p.add_argument(
        "--target",
        default="logit",
        choices=TARGETS,
        help="the score gradient methods differentiate (see explain --help)",
    )
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
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="shard the images over Ray workers (ADDRESS: ray://host:port or auto; none: a "
        "local cluster); results are identical to one process",
    )
    p.add_argument("--out", required=True, type=Path)
    add_load_flags(p)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..core.data import load_dataset
    from ..core.evaluation import evaluate_saliency, write_evaluation
    from ..core.explain import open_model
    from ..core.export import check_writable
    from ..core.saliency import METHODS, MapSettings
    from ..core.train import resolve_device
    from .errors import CLIError

    if args.limit is not None and args.limit < 1:
        raise CLIError(f"--limit must be at least 1 image, got {args.limit}")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not 0.0 <= args.threshold <= 1.0:
        raise CLIError(f"--threshold must be in [0, 1], got {args.threshold}")
    if args.faithfulness < 0:
        raise CLIError(f"--faithfulness must be >= 0 steps, got {args.faithfulness}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise CLIError(
            f"unknown method(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(METHODS)}"
        )
    outputs = [args.out / n for n in ("per_image.csv", "summary.json", "summary.md")]
    check_writable(outputs, overwrite=args.overwrite, needed_bytes=64 * 1024)
    loaded = open_model(
        args.checkpoint, device=resolve_device(args.device), options=load_options_from_args(args)
    )
    data = load_dataset(args.data, classes=args.classes, seed=args.seed).split(args.split)
    if args.limit is not None:
        data = data.subset(list(range(min(args.limit, len(data)))))
    if len(data) == 0:
        raise CLIError(f"the {args.split} split of {args.data} has no images to evaluate")
    if data.num_classes != len(loaded.class_names):
        print(
            f"warning: the dataset has {data.num_classes} classes, the model "
            f"{len(loaded.class_names)}; labels are compared by index",
            file=sys.stderr,
        )
    settings = MapSettings(fusion=args.fusion, discard_ratio=args.discard, target=args.target)
    bar = ProgressBar(total=len(data))
    evaluate = evaluate_saliency
    if args.ray is not None:  # the same call, one Ray task per shard of whole batches
        from ..core.cluster import ray_evaluator

        evaluate = ray_evaluator(args.ray, args.checkpoint, load_options_from_args(args))
    result = evaluate(
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
