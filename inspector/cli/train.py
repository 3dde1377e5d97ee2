"""``vit-inspector train``: one of the paper's ViT presets on a dataset."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from .errors import EXIT_FAILED, EXIT_TERMINATED, CLIError
from .events import JsonEvents
from .progress import ProgressBar, format_table
from .signals import stop_on_sigterm


def add_train(sub: argparse._SubParsersAction) -> None:
    from ..core.config import POS_ENCODINGS, PRESETS

    p = sub.add_parser(
        "train",
        help="train a ViT preset on a dataset",
        description="Train one of the paper's ViT presets and write last.pt, "
        "best.pt and history.json into --out.",
    )
    p.add_argument("--preset", default="baseline", choices=PRESETS)
    p.add_argument(
        "--data", required=True, help="'synthetic', a Tiny ImageNet folder, or an image folder"
    )
    p.add_argument(
        "--classes",
        type=int,
        default=None,
        help="number of classes (first N sorted; default 10, or all of an image folder's)",
    )
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--optimizer", choices=("adamw", "adam"), default="adamw")
    p.add_argument("--warmup", type=float, default=0.1, help="warm-up share of all steps")
    p.add_argument(
        "--grad-clip",
        type=float,
        default=1.0,
        help="clip the gradients' global norm to this value (0: no clipping)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--train-per-class",
        type=int,
        default=None,
        help="limit training images per class (synthetic default: 500)",
    )
    p.add_argument(
        "--paper-faithful",
        action="store_true",
        help="softmax inside the model then cross-entropy (the authors' double softmax)",
    )
    p.add_argument(
        "--data-format",
        choices=("auto", "tiny-imagenet", "image-folder"),
        default="auto",
        help="how to read a --data folder (auto: Tiny ImageNet when it has wnids.txt)",
    )
    p.add_argument(
        "--val-per-class",
        type=int,
        default=None,
        help="synthetic data only: validation (and test) images per class (default 50)",
    )
    arch = p.add_argument_group("architecture (changes to --preset)")
    arch.add_argument("--pos-encoding", choices=POS_ENCODINGS, default=None)
    arch.add_argument("--depth", type=int, default=None, help="transformer blocks")
    arch.add_argument("--heads", type=int, default=None, help="attention heads per block")
    arch.add_argument("--hidden-size", type=int, default=None)
    arch.add_argument("--no-residual", action="store_true", help="drop the residual paths")
    arch.add_argument("--no-layernorm", action="store_true", help="drop the LayerNorms")
    p.add_argument(
        "--events",
        choices=("text", "json"),
        default="text",
        help="json: one JSON object per line on stdout (loaded, step, epoch, result) for a "
        "program driving the run, no progress bar; errors stay one line on stderr",
    )
    p.add_argument("--resume", action="store_true", help="continue from --out/last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    if args.classes is not None and args.classes < 2:
        raise CLIError("--classes must be at least 2")
    if args.train_per_class is not None and args.train_per_class < 1:
        raise CLIError(f"--train-per-class must be at least 1, got {args.train_per_class}")
    if args.epochs < 1:
        raise CLIError(f"--epochs must be at least 1, got {args.epochs}")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")
    for flag, value in (("--depth", args.depth), ("--heads", args.heads)):
        if value is not None and value < 1:
            raise CLIError(f"{flag} must be at least 1, got {value}")
    if args.hidden_size is not None and args.hidden_size < 1:
        raise CLIError(f"--hidden-size must be at least 1, got {args.hidden_size}")
    if args.val_per_class is not None and args.val_per_class < 1:
        raise CLIError(f"--val-per-class must be at least 1, got {args.val_per_class}")
    from ..core.distributed import process_group_from_env

    stop = threading.Event()
    # Under torchrun every rank runs this command; rank 0 alone reports and writes.
    with process_group_from_env(args.device) as world, stop_on_sigterm(stop) as terminated:
        return _train(args, stop, terminated, quiet=not world.is_writer)


def _architecture(args: argparse.Namespace) -> dict[str, object]:
    """The architecture flags given, as ``ViTConfig`` fields over the preset's."""
    changes: dict[str, object] = {}
    for key, value in (
        ("pos_encoding", args.pos_encoding),
        ("depth", args.depth),
        ("num_heads", args.heads),
        ("hidden_size", args.hidden_size),
    ):
        if value is not None:
            changes[key] = value
    if args.no_residual:
        changes["residual"] = False
    if args.no_layernorm:
        changes["layernorm"] = False
    return changes


def _load_data(args: argparse.Namespace):  # -> DatasetSplits
    from ..core.data import load_dataset

    kwargs: dict[str, int] = {}
    if args.train_per_class is not None:
        kwargs["train_per_class"] = args.train_per_class
    synthetic = str(args.data).strip().lower() == "synthetic"
    if args.val_per_class is not None:
        if not synthetic:
            raise CLIError("--val-per-class applies to the synthetic data only")
        kwargs["val_per_class"] = kwargs["test_per_class"] = args.val_per_class
    if args.data_format == "auto" or synthetic:
        return load_dataset(args.data, classes=args.classes, seed=args.seed, **kwargs)
    folder = Path(args.data).expanduser()
    if not folder.is_dir():
        raise CLIError(f"dataset folder {str(folder)!r} does not exist or is not a folder")
    if args.data_format == "tiny-imagenet":
        # Read as what the user says it is, so a wrong folder gets the Tiny ImageNet
        # loader's precise message (missing wnids.txt, annotations...).
        from ..core.data.tiny_imagenet import load_tiny_imagenet

        classes = 10 if args.classes is None else args.classes
        return load_tiny_imagenet(folder, classes=classes, seed=args.seed, **kwargs)
    from ..core.data.image_folder import load_image_folder

    if kwargs:
        raise CLIError("--train-per-class does not apply to an image folder (all images are used)")
    return load_image_folder(folder, seed=args.seed)


def _train(
    args: argparse.Namespace, stop: threading.Event, terminated: list[int], quiet: bool
) -> int:
    import time

    from ..core.config import TrainConfig, preset
    from ..core.train import EpochEvent, StepEvent, train

    json_events = JsonEvents() if args.events == "json" and not quiet else None
    t0 = time.perf_counter()
    data = _load_data(args)
    if json_events is not None:
        json_events.emit(
            "loaded",
            train=len(data.train),
            val=len(data.val),
            classes=data.train.num_classes,
            seconds=time.perf_counter() - t0,
        )
    model_cfg = preset(
        args.preset,
        num_classes=data.train.num_classes,
        image_size=data.train.images.shape[-1],
        output_softmax=args.paper_faithful,
        **_architecture(args),
    )
    train_cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        optimizer=args.optimizer,
        warmup_fraction=args.warmup,
        seed=args.seed,
        device=args.device,
        grad_clip=args.grad_clip or None,
    )
    # A rank other than 0 prints nothing; with --events json stdout carries JSON only.
    say = _silent if quiet or json_events is not None else print
    say_err = _silent if quiet else print  # stderr: in both modes
    bar = ProgressBar(total=1)
    announced = []

    def on_json_event(event: StepEvent | EpochEvent) -> None:
        if isinstance(event, StepEvent):
            json_events.step(
                event, force=event.step == event.steps_per_epoch, epochs=train_cfg.epochs
            )
        else:
            json_events.emit("epoch", event)

    def on_event(event: StepEvent | EpochEvent) -> None:
        if not announced:
            # Said at the first step, once train() has checked the folder: an error before
            # it (read-only or full disk, a run in the way) stays the only line.
            announced.append(True)
            bar.note(
                f"training {args.preset} on {len(data.train)} images "
                f"({data.train.num_classes} classes), validating on {len(data.val)}; "
                f"writing {args.out}"
            )
        if isinstance(event, StepEvent):
            bar.total = event.total_steps
            bar.update(
                event.global_step,
                f"epoch {event.epoch} loss {event.loss:.3f} {event.images_per_second:.0f} img/s",
            )
        else:
            m = event.metrics
            bar.note(
                f"epoch {event.epoch}/{event.epochs}: train loss {m['train_loss']:.3f} "
                f"acc {m['train_acc']:.3f} | val loss {m['val_loss']:.3f} "
                f"acc {m['val_accuracy']:.3f}{' *' if event.is_best else ''}"
            )

    try:
        result = train(
            model_cfg,
            train_cfg,
            data,
            args.out,
            callback=None if quiet else on_json_event if json_events else on_event,
            stop=stop,
            resume=args.resume,
            overwrite=args.overwrite,
            provenance={"preset": args.preset, "data": str(args.data)},
        )
    except KeyboardInterrupt:
        stop.set()
        bar.close()
        say_err(
            f"interrupted; {args.out / 'last.pt'} holds the last completed epoch "
            f"(continue with --resume)",
            file=sys.stderr,
        )
        return 130
    bar.close()
    if json_events is not None:
        best = result.best_path if result.best_path.exists() else None
        json_events.emit(
            "result",
            status=result.status,
            message=result.message,
            epochs_done=len(result.history),
            best=str(best) if best and result.status == "finished" else None,
        )
    if terminated:
        epochs = len(result.history)
        say_err(
            f"terminated (SIGTERM); {args.out / 'last.pt'} holds epoch {epochs} of "
            f"{args.epochs}" + ("" if epochs >= args.epochs else " (continue with --resume)"),
            file=sys.stderr,
        )
        return EXIT_TERMINATED
    if result.history and not quiet:
        last = result.history[-1]
        best = max(result.history, key=lambda r: r["val_accuracy"])
        rows = [
            (
                name,
                f"{last[key]:.3f}" if last[key] is not None else "n/a",
                f"{best[key]:.3f}" if best[key] is not None else "n/a",
            )
            for name, key in [
                ("train accuracy", "train_acc"),
                ("val accuracy", "val_accuracy"),
                ("val macro precision", "val_precision"),
                ("val macro recall", "val_recall"),
                ("val macro F1", "val_f1"),
                ("val ROC AUC (ovr)", "val_roc_auc"),
            ]
        ]
        say(
            format_table(
                ["metric", f"last (epoch {last['epoch']})", f"best (epoch {best['epoch']})"], rows
            )
        )
    say(result.message)
    return 0 if result.status == "finished" else EXIT_FAILED


def _silent(*_args: object, **_kwargs: object) -> None:
    pass
