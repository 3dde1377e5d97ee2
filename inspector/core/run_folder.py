"""What a training output folder holds, cheaply: for offering Resume before a job starts.

Only file names and ``history.json`` are read (no ``torch.load``), so a GUI can ask on every
edit of the output field. The training loop itself decides for real (``core.train.train`` with
``resume=True`` checks the model, the settings and the data, and repairs derived files).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunFolder:
    """A folder that holds a training run.

    Attributes:
        files: the run's files present (``run_state.pt``, ``last.pt``...).
        epochs_done: completed epochs according to ``history.json`` (0 when unreadable).
        resumable: the state a resume needs is there (``run_state.pt``, or an older run's
            ``last.pt`` with ``last_state.pt``).
    """

    files: tuple[str, ...]
    epochs_done: int
    resumable: bool


def inspect_run_folder(folder: str | Path) -> RunFolder | None:
    """The run in ``folder``, or None when it holds none (missing, empty, not a folder)."""
    out = Path(folder).expanduser()
    try:
        if not out.is_dir():
            return None  # the usual case (a fresh runs/<preset>-<time>): no torch import
        # run_state imports torch: only now, for a folder that exists.
        from .run_state import HISTORY, LAST, LEGACY_STATE, STATE, existing_run_files

        files = tuple(existing_run_files(out))
    except OSError:
        return None
    if not files:
        return None
    epochs = 0
    try:
        rows = json.loads((out / HISTORY).read_text())
        if isinstance(rows, list):
            epochs = len(rows)
    except (OSError, ValueError):
        pass  # a kill between writes: run_state.pt still says where the run is
    resumable = STATE in files or (LAST in files and LEGACY_STATE in files)
    return RunFolder(files=files, epochs_done=epochs, resumable=resumable)
