"""The CLI's user-facing errors: one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_TERMINATED = 128 + 15  # the shell's status for SIGTERM, which SLURM and `kill` send


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that are the user's input or environment, not our bug: shown as one line.

    OSError covers a full disk (ENOSPC), a read-only file system (EROFS), a folder given
    where a file belongs (IsADirectoryError) and missing permissions.
    """
    from ..core.checkpoint import CheckpointError
    from ..core.cluster import ClusterError
    from ..core.config import ConfigError
    from ..core.data import DatasetError
    from ..core.train import TrainingError

    return (
        CLIError,
        ConfigError,
        CheckpointError,
        ClusterError,
        DatasetError,
        TrainingError,
        OSError,
        ValueError,
    )


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with control characters escaped (``\\x1b`` -> ``\\\\x1b``).

    Class names, file names and messages come from files we did not write; a terminal
    escape in one of them must not clear or rewrite the user's screen.
    """
    out = []
    for ch in text:
        if ch.isprintable() or (keep_newlines and ch == "\n"):
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def path_argument(text: str) -> Path:
    """argparse's type for every path option: ``Path(text)``, refusing an empty string.

    ``Path("")`` is ``.``: an empty ``--out ""`` (an unset shell variable, say) would
    otherwise write into the current folder, and an empty ``--checkpoint`` would read it.
    """
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path was given")
    return Path(text)


def _paths(value: object) -> list[Path]:
    if isinstance(value, Path):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, Path)]
    return []


def refuse_special_files(args: argparse.Namespace) -> None:
    """Refuse every path argument that names a FIFO, socket or device.

    Opening a FIFO blocks until someone writes into it (``--class-names`` would hang for
    ever); a device could be read without end. Only regular files and folders are taken.
    """
    candidates = [p for value in vars(args).values() for p in _paths(value)]
    data = getattr(args, "data", None)
    if isinstance(data, str) and data.strip().lower() != "synthetic":
        candidates.append(Path(data))
    for path in candidates:
        try:
            mode = os.stat(path).st_mode  # follows links: a link to a FIFO is refused too
        except OSError:
            continue  # missing: the command says what it expected there
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            kind = (
                "a FIFO"
                if stat.S_ISFIFO(mode)
                else "a socket"
                if stat.S_ISSOCK(mode)
                else "a device"
            )
            raise CLIError(f"{path} is {kind}, not a regular file or folder; refusing to use it")
