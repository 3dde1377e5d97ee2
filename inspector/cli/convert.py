"""``vit-inspector convert``: any loadable checkpoint -> our own format (the CLI's "Save as").

The file is opened like every other command opens it (timm, torchvision, Hugging Face, the
paper's layout, or ours), with the same options (``--heads``, ``--class-names``,
``--normalisation``, ``--resize``, ``--image-size``, ``--residual``), and written with
:func:`~inspector.core.checkpoint.save_checkpoint` (atomic, never over an existing file without
``--overwrite``). What was decided -- class names, preprocessing, the options given, the source
family and every import note -- is kept in the saved file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .load_flags import add_load_flags, load_options_from_args


def add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="save any supported checkpoint in vit-inspector's own format",
        description="Open a checkpoint (ours, timm, torchvision, Hugging Face, or the seed "
        "paper's layout) with the given options and save it as a vit-inspector "
        "checkpoint that remembers them.",
    )
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="the file to write (e.g. model.pt)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_load_flags(p)
    p.set_defaults(func=cmd_convert)


def cmd_convert(args: argparse.Namespace) -> int:
    from ..core.atomic import check_folder_writable, refuse_overwrite
    from ..core.checkpoint import save_checkpoint
    from ..core.load_options import describe, load_with_options
    from .errors import CLIError, printable

    if args.out.is_dir():
        raise CLIError(f"--out {args.out} is a folder; give the file to write (e.g. model.pt)")
    refuse_overwrite(args.out, args.overwrite)  # before the (possibly slow) load
    if not args.out.parent.is_dir():
        raise CLIError(f"the folder {args.out.parent} does not exist")
    if args.out.resolve() == args.checkpoint.resolve():
        raise CLIError("--out is the --checkpoint file itself; write to another file")
    # Read-only or full disk: say so now, not after the load. Our file is about the size of
    # the weights, which a foreign file holds too.
    size = args.checkpoint.stat().st_size if args.checkpoint.is_file() else 0
    check_folder_writable(args.out.parent, needed_bytes=size + 64 * 1024)
    ckpt = load_with_options(args.checkpoint, load_options_from_args(args))
    ckpt.provenance["converted_from"] = str(args.checkpoint)
    save_checkpoint(args.out, ckpt, overwrite=args.overwrite)
    print(printable(describe(ckpt), keep_newlines=True))
    for note in ckpt.provenance.get("import_notes", []):
        print(f"note: {printable(str(note))}", file=sys.stderr)
    print(f"wrote {args.out}")
    return 0
