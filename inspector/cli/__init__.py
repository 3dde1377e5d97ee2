"""``vit-inspector``: the command-line front over the same core the GUI uses.

Every command prints a one-line ``vit-inspector: error: ...`` and exits non-zero on bad input,
never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from .. import __version__
from .ablate import add_ablate
from .convert import add_convert
from .errors import (
    EXIT_USAGE,
    CLIError,
    path_argument,
    printable,
    refuse_special_files,
    user_errors,
)
from .evaluate import add_evaluate
from .explain import add_explain
from .sanity import add_sanity
from .train import add_train


class _Parser(argparse.ArgumentParser):
    """argparse, with its refusals on one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            EXIT_USAGE, f"{self.prog}: error: {printable(message)} (see {self.prog} --help)\n"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vit-inspector", description="See where a Vision Transformer looks, and why."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train(sub)
    add_explain(sub)
    add_evaluate(sub)
    add_ablate(sub)
    add_convert(sub)
    add_sanity(sub)
    for command in sub.choices.values():
        for action in command._actions:
            if action.type is Path:
                action.type = path_argument
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        refuse_special_files(args)
        _check_seeds(args)
        return int(args.func(args) or 0)
    except user_errors() as exc:
        print(f"vit-inspector: error: {printable(_one_line(exc))}", file=sys.stderr)
        return EXIT_USAGE


def _check_seeds(args: argparse.Namespace) -> None:
    """Seeds go to torch and numpy, which take 0..2**32-1 alike (numpy refuses negatives)."""
    for name in ("seed", "data_seed"):
        value = getattr(args, name, None)
        if isinstance(value, int) and not 0 <= value < 2**32:
            flag = "--" + name.replace("_", "-")
            raise CLIError(f"{flag} must be a whole number from 0 to {2**32 - 1}, got {value}")


def _one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (OSError: "reason: file")."""
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc.args[0], str):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    text = str(exc) or type(exc).__name__
    return " ".join(text.split("\n"))
