"""``vit-inspector explain``: saliency maps, predictions and mask scores for images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .load_flags import add_load_flags, load_options_from_args


def add_explain(sub: argparse._SubParsersAction) -> None:
    from ..core.postprocess import COLORMAPS
    from ..core.saliency import AGGREGATIONS, FUSIONS, TARGETS, registry

    methods = "; ".join(f"{m.name}: {m.label}" for m in registry.methods())
    p = sub.add_parser(
        "explain",
        help="saliency maps, predictions and mask scores for images",
        description="For each image write <stem>_<method>.png (the overlay enlarged to "
        "--size px, the mask outlined, a colour bar of the real values), <stem>_<method>.npy "
        "(patch-grid map divided by its maximum, float32), <stem>_<method>_raw.npy (the "
        "method's unnormalised values), <stem>.json (top-5 predictions, the settings the "
        "method uses, SMM and localisation metrics when a mask is given, and notices for a "
        "degenerate map) and with --save-attention <stem>_attention.npy ([layers, heads, T, "
        f"T], float32). Methods: {methods}.",
    )
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--image", required=True, nargs="+", type=Path)
    p.add_argument("--method", default="rollout", choices=registry.names())
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
    p.add_argument(
        "--target",
        default="logit",
        choices=TARGETS,
        help="the score gradient methods differentiate: the logit (default; for a model "
        "ending in a softmax, the input to it), the probability (vit-explain's and the "
        "paper's maps) or the log-probability",
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
        help="object mask image(s), one per --image, of the image's own size (non-zero = "
        "object); aligned through the model's resize and crop like the image",
    )
    p.add_argument("--threshold", type=float, default=0.3, help="SMM threshold")
    p.add_argument("--cmap", default="viridis", choices=sorted(COLORMAPS))
    p.add_argument("--opacity", type=float, default=0.5)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--prompt",
        action="append",
        default=None,
        metavar="TEXT",
        help="CLIP-like models: map the image-text similarity of this prompt (repeatable; "
        "several give a zero-shot top-5 and one map per prompt)",
    )
    p.add_argument(
        "--size",
        type=int,
        default=512,
        help="the overlay PNG's side in pixels, enlarged by nearest neighbour (default 512; "
        "0: the model's input size); a mask given with --mask is outlined",
    )
    p.add_argument(
        "--no-colorbar",
        dest="colorbar",
        action="store_false",
        help="leave out the colour bar (the map's real values) beside the overlay",
    )
    p.add_argument("--save-attention", action="store_true")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--out", required=True, type=Path)
    add_load_flags(p)
    p.set_defaults(func=cmd_explain)


def explain_settings(args: argparse.Namespace):
    """The :class:`~inspector.core.pipeline.ExplainSettings` the flags describe."""
    from ..core.pipeline import ExplainSettings
    from ..core.saliency import MapSettings

    m = MapSettings(
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
        target=args.target,
    )
    return ExplainSettings(
        map=m,
        smoothing=args.smooth,
        threshold=args.threshold,
        colormap=args.cmap,
        opacity=args.opacity,
    )


def _outputs(args: argparse.Namespace, stem: str) -> list[Path]:
    out = [
        args.out / f"{stem}_{args.method}.png",
        args.out / f"{stem}_{args.method}.npy",
        args.out / f"{stem}_{args.method}_raw.npy",
        args.out / f"{stem}.json",
    ]
    return out + ([args.out / f"{stem}_attention.npy"] if args.save_attention else [])


def cmd_explain(args: argparse.Namespace) -> int:
    from ..core.explain import load_image, open_model
    from ..core.export import (
        check_writable,
        ensure_folder,
        mask_record,
        save_json,
        save_npy,
        save_png,
    )
    from ..core.figure import map_figure
    from ..core.imageio import read_mask
    from ..core.pipeline import explain_one
    from ..core.train import resolve_device
    from .errors import CLIError, printable

    if args.mask is not None and len(args.mask) != len(args.image):
        raise CLIError(
            f"got {len(args.mask)} --mask file(s) for {len(args.image)} image(s); "
            f"give one mask per image"
        )
    settings = explain_settings(args)
    stems = [p.stem for p in args.image]
    if len(set(stems)) != len(stems):
        raise CLIError("two --image files share a name; outputs would collide")
    check_writable(
        [t for s in stems for t in _outputs(args, s)],
        overwrite=args.overwrite,
        needed_bytes=64 * 1024,
    )

    loaded = open_model(
        args.checkpoint, device=resolve_device(args.device), options=load_options_from_args(args)
    )
    if ensure_folder(args.out, create=True):
        print(printable(f"created folder {args.out}"))  # stdout: stderr is for errors
    if args.prompt:  # text-prompted maps: the logic is core.prompts (issue 12)
        from ..core.prompts import write_prompt_outputs

        for path in args.image:
            for line in write_prompt_outputs(
                loaded,
                path,
                args.prompt,
                args.out,
                method=args.method,
                overwrite=args.overwrite,
                settings=settings.map,
            ):
                print(line)
        return 0
    for i, path in enumerate(args.image):
        image = load_image(path, loaded)
        mask = read_mask(args.mask[i]) if args.mask is not None else None
        try:
            result = explain_one(
                loaded,
                image,
                settings,
                mask=mask,
                mask_source=str(args.mask[i]) if args.mask is not None else None,
            )
        except ValueError as exc:
            raise CLIError(f"{path.name}: {exc}") from exc
        record: dict[str, Any] = {
            **result.metadata,
            "image": str(path),
            "checkpoint": str(args.checkpoint),
            "mask": mask_record("file", result.mask, args.mask[i])
            if args.mask is not None
            else None,
        }
        try:
            fig = map_figure(
                result.overlay,
                result.full,
                result.raw_grid,
                smoothing=settings.smoothing,
                colormap=settings.colormap,
                mask=result.mask,
                size=args.size,
                colorbar=args.colorbar,
            )
        except ValueError as exc:
            raise CLIError(f"--size: {exc}") from exc
        record["figure"] = fig.meta
        png, npy, raw_npy, js, *rest = _outputs(args, path.stem)
        save_png(png, fig.rgb, record, overwrite=args.overwrite)
        save_npy(npy, result.grid.astype(np.float32), overwrite=args.overwrite)
        save_npy(raw_npy, result.raw_grid.astype(np.float32), overwrite=args.overwrite)
        if args.save_attention:
            attn = result.capture.attentions.numpy().astype(np.float32)
            save_npy(rest[0], attn, overwrite=args.overwrite)
        save_json(js, record, overwrite=args.overwrite)
        for flag in result.flags:
            print(f"warning: {path.name}: {flag}", file=sys.stderr)
        if "token_norm" in record:  # the artefact view: say which tokens stand out
            tn = record["token_norm"]
            where = ", ".join(f"({o['row']}, {o['col']})" for o in tn["outliers"]) or "none"
            print(printable(f"{path.name}: layer {tn['layer']} high-norm patch tokens: {where}"))
        top = record["predictions"][0]
        prob = "n/a" if top["probability"] is None else f"{top['probability']:.3f}"
        smm_text = ""
        if result.metrics is not None:
            value = result.metrics["smm"]
            smm_text = f", SMM {value:.3f}" if value is not None else ", SMM undefined"
        print(printable(f"{path.name}: {top['name']} ({prob}){smm_text}"))
    return 0
