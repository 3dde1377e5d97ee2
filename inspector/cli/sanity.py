"""``vit-inspector sanity``: the cascading-randomisation sanity check (Adebayo et al. 2018)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .load_flags import add_load_flags, load_options_from_args
from .progress import ProgressBar, format_table


def add_sanity(sub: argparse._SubParsersAction) -> None:
    from ..core.postprocess import COLORMAPS
    from ..core.saliency import AGGREGATIONS, FUSIONS, METHODS

    p = sub.add_parser(
        "sanity",
        help="cascading model-randomisation sanity check of a saliency method",
        description="Re-initialises the model's layers from the top (head, last block, ..., "
        "patch embedding), cumulatively, and compares each step's map with the trained "
        "model's by Spearman rank correlation and SSIM. Writes sanity.json, sanity.csv and "
        "sanity.png (one row of maps per image) into --out.",
    )
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--image", required=True, nargs="+", type=Path)
    p.add_argument("--method", default="rollout", choices=METHODS)
    p.add_argument("--fusion", default="max", choices=FUSIONS)
    p.add_argument("--aggregation", default="mean", choices=AGGREGATIONS)
    p.add_argument("--discard", type=float, default=0.9, help="discard ratio in [0, 1)")
    p.add_argument(
        "--class",
        dest="class_index",
        type=int,
        default=None,
        help="target class for gradient methods (default: the trained model's prediction)",
    )
    p.add_argument("--smooth", choices=("none", "paper"), default="none")
    p.add_argument("--seed", type=int, default=0, help="seed of the re-initialisation")
    p.add_argument("--cmap", default="jet", choices=sorted(COLORMAPS))
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--out", required=True, type=Path)
    add_load_flags(p)
    p.set_defaults(func=cmd_sanity)


def cmd_sanity(args: argparse.Namespace) -> int:
    from ..core.explain import load_image, open_model
    from ..core.saliency import MapSettings
    from ..core.sanity import cascade_layers, cascading_sanity
    from ..core.sanity_files import check_sanity_outputs, sanity_record, save_sanity
    from ..core.train import resolve_device
    from .errors import CLIError

    names = [p.name for p in args.image]
    if len(set(names)) != len(names):
        raise CLIError("the same --image file is given twice")
    settings = MapSettings(
        method=args.method,
        fusion=args.fusion,
        discard_ratio=args.discard,
        class_index=args.class_index,
        aggregation=args.aggregation,
    )
    check_sanity_outputs(args.out, overwrite=args.overwrite)
    loaded = open_model(
        args.checkpoint, device=resolve_device(args.device), options=load_options_from_args(args)
    )
    images = [load_image(path, loaded) for path in args.image]
    bar = ProgressBar(total=len(cascade_layers(loaded.model)))
    result = cascading_sanity(
        loaded,
        images,
        settings,
        smoothing=args.smooth,
        seed=args.seed,
        progress=lambda done, text: bar.update(done, text),
    )
    bar.close()
    record = sanity_record(result, args.checkpoint, args.image)
    save_sanity(
        args.out,
        result,
        record,
        [im.display for im in images],
        cmap=args.cmap,
        overwrite=args.overwrite,
    )
    rows = [
        [
            r["layer"],
            "n/a" if r["spearman"] is None else f"{r['spearman']:.3f}",
            f"{r['ssim']:.3f}",
        ]
        for r in record["per_layer"]
    ]
    print(format_table(["layer randomised (cumulative)", "spearman", "ssim"], rows))
    return 0
