"""``vit-inspector explain``: saliency maps, predictions and mask scores for images."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from .load_flags import add_load_flags, load_options_from_args


def add_explain(sub: argparse._SubParsersAction) -> None:
    from ..core.postprocess import COLORMAPS
    from ..core.saliency import AGGREGATIONS, FUSIONS, METHODS

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


def _map_settings(args: argparse.Namespace):
    from ..core.saliency import MapSettings

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
    from ..core.explain import capture_image, load_image, open_model, saliency_image
    from ..core.export import check_writable, save_json, save_npy, save_png
    from ..core.imageio import read_mask
    from ..core.metrics import localisation_metrics
    from ..core.postprocess import overlay
    from ..core.train import resolve_device
    from .errors import CLIError

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
