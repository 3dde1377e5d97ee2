"""``vit-inspector ablate``: the paper's 14-model ablation study with its report."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from .errors import EXIT_TERMINATED
from .events import JsonEvents
from .progress import ProgressBar, format_table
from .signals import stop_on_sigterm


def add_ablate(sub: argparse._SubParsersAction) -> None:
    from ..core.config import PRESETS
    from ..core.saliency import FUSIONS, METHODS

    p = sub.add_parser(
        "ablate",
        help="train and compare the paper's 14 ViT variants (resumable)",
        description="Train the baseline and its 13 one-change variants with the paper's "
        "hyper-parameters, evaluate each final model (last.pt) on the test split "
        "(accuracy, macro recall / precision / F1, ROC AUC, SMM) and write "
        "report.md / .csv / .json, confusion/, curves/ and saliency.png into --out. "
        "Running the same command again resumes an interrupted study, reuses "
        "finished models and re-evaluates only what the saliency settings change; "
        "the report in --out is then regenerated.",
    )
    p.add_argument("--data", required=True, help="'synthetic' or a Tiny ImageNet folder")
    p.add_argument("--classes", type=int, default=10, help="number of classes (the first N)")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="number of training seeds (0..N-1); cells become mean ± std",
    )
    p.add_argument("--jobs", type=int, default=1, help="models trained at once (processes)")
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="train each (model, seed) as a Ray task: on the cluster at ADDRESS (ray://host:port "
        "or auto), or on a local one when no address is given (needs the [cluster] extra)",
    )
    p.add_argument(
        "--only", default=None, help=f"comma-separated models (default all): {','.join(PRESETS)}"
    )
    p.add_argument(
        "--paper-faithful",
        action="store_true",
        help="softmax inside every model then cross-entropy (the authors' double softmax)",
    )
    p.add_argument("--method", default="rollout", choices=METHODS, help="saliency for SMM")
    p.add_argument(
        "--fusion",
        default="min",
        choices=FUSIONS,
        help="head fusion (min: the paper's most focused maps)",
    )
    p.add_argument("--discard", type=float, default=0.0, help="rollout discard ratio in [0, 1)")
    p.add_argument("--threshold", type=float, default=0.3, help="SMM threshold")
    p.add_argument("--smooth", choices=("none", "paper"), default="none")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per training process (default: cores // jobs; 1 is "
        "often fastest for these tiny models, and always on a busy machine)",
    )
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument(
        "--train-per-class",
        type=int,
        default=None,
        help="training images per class (default: all / 500 synthetic)",
    )
    p.add_argument("--val-per-class", type=int, default=None, help="synthetic only")
    p.add_argument("--test-per-class", type=int, default=None, help="synthetic only")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="train every model again from scratch, even over a study of other settings",
    )
    p.add_argument(
        "--events",
        choices=("text", "json"),
        default="text",
        help="json: every study event as one JSON object per line on stdout (start, step, "
        "epoch, evaluate, model_done, report, then result with the report's rows), no "
        "progress bar or table; errors stay one line on stderr",
    )
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_ablate)


def cmd_ablate(args: argparse.Namespace) -> int:
    from ..core.config import PRESETS
    from ..core.study import StudyEvent, StudySpec, run_study
    from .errors import CLIError

    presets = PRESETS
    if args.only is not None:
        presets = tuple(n.strip() for n in args.only.split(",") if n.strip())
        unknown = [n for n in presets if n not in PRESETS]
        if unknown or not presets:
            raise CLIError(
                f"--only: unknown model(s) {', '.join(unknown) or '(none)'}; choose "
                f"from {', '.join(PRESETS)}"
            )
    if args.seeds < 1:
        raise CLIError(f"--seeds must be >= 1, got {args.seeds}")
    spec = StudySpec(
        data=args.data,
        classes=args.classes,
        presets=presets,
        seeds=tuple(range(args.seeds)),
        epochs=args.epochs,
        jobs=args.jobs,
        paper_faithful=args.paper_faithful,
        method=args.method,
        fusion=args.fusion,
        discard_ratio=args.discard,
        threshold=args.threshold,
        smoothing=args.smooth,
        device=args.device,
        data_seed=args.data_seed,
        threads=args.threads,
        train_per_class=args.train_per_class,
        val_per_class=args.val_per_class,
        test_per_class=args.test_per_class,
    )
    bar = ProgressBar(total=1000)
    json_events = JsonEvents() if args.events == "json" else None

    def on_json_event(event: StudyEvent) -> None:
        if event.kind == "step":
            json_events.step(event)  # throttled; every other kind is sent
        else:
            json_events.emit(event.kind, event)

    def on_event(event: StudyEvent) -> None:
        if event.kind == "start":
            bar.note(f"ablation in {args.out}: {event.message}")
        elif event.kind == "model_done":
            m = event.metrics or {}
            acc = m.get("accuracy")
            smm = m.get("smm")
            bar.note(
                f"[{event.index}/{event.total}] {event.preset} seed {event.seed}: "
                f"{m.get('status')}{' (reused)' if m.get('reused') else ''}, test acc "
                f"{'n/a' if acc is None else f'{acc:.3f}'}, SMM "
                f"{'n/a' if smm is None else f'{smm:.3f}'}"
            )
        else:
            bar.update(int(event.fraction * 1000), event.message)

    stop = threading.Event()
    try:
        with stop_on_sigterm(stop) as terminated:
            result = run_study(
                spec,
                args.out,
                callback=on_json_event if json_events else on_event,
                stop=stop,
                overwrite=args.overwrite,
                ray=args.ray,
            )
    except KeyboardInterrupt:
        bar.close()
        print(
            f"interrupted; finished models and the last completed epochs are kept in "
            f"{args.out / 'runs'}; run the same command again to continue",
            file=sys.stderr,
        )
        return 130
    bar.close()
    if json_events is not None:
        finished = result.status == "finished"
        json_events.emit(
            "result",
            status=result.status,
            message=result.message,
            rows=result.rows if finished else [],
            report=str(args.out / "report.md") if finished else None,
            wall_seconds=result.wall_seconds,
        )
    if terminated and result.status != "finished":
        print(f"terminated (SIGTERM); {result.message}", file=sys.stderr)
        return EXIT_TERMINATED
    if result.status != "finished":
        print(result.message, file=sys.stderr)
        return 130
    if json_events is not None:
        return 0  # the rows went out in the result event
    from ..core.study import COLUMNS, format_cell

    table = [[r["model"], *(format_cell(r[k]) for k, _ in COLUMNS)] for r in result.rows]
    print(format_table(["model", *(t for _, t in COLUMNS)], table))
    print(f"report: {args.out / 'report.md'} ({result.wall_seconds:.1f} s)")
    return 0
