"""Test-side fault injection: SIGKILL a run at each write boundary, then resume it.

Run as a script by ``test_crash_consistency.py`` (never imported by the package, so no
production code path can ever fire it)::

    python crash_harness.py {train|study} WORKDIR

It imports torch and the package once, then forks one child per scenario, so that a
scenario costs a few training steps, not an interpreter start-up:

1. ``ref``: an uninterrupted run (in the harness process itself), with :func:`os.replace`
   wrapped to *count* the atomic writes (renames of ``.NAME.<hex>.tmp`` files, i.e.
   :func:`inspector.core.atomic.atomic_path`).
2. For every write ``i`` and phase ``before`` (temporary complete, not yet renamed) or
   ``after`` (renamed, directory not yet synced; ``train`` only): a child whose wrapped
   ``os.replace`` SIGKILLs the process at that point, then a clean child that resumes the
   run (``train``: ``resume=True``, as ``--resume`` does; ``study``: the same ``run_study``
   again, as a rerun of ``ablate`` does).

It prints one JSON object: the reference's write list and, per scenario, both exit codes.
The test compares the folders it leaves behind with ``ref``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path

import torch

from inspector.core.config import TrainConfig, preset
from inspector.core.data import make_synthetic
from inspector.core.study import StudySpec, run_study
from inspector.core.train import train

_TEMP = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{12}\.tmp$")
_real_replace = os.replace

EPOCHS = 2
SPEC = StudySpec(
    classes=2,
    presets=("baseline",),
    epochs=EPOCHS,
    device="cpu",
    train_per_class=8,
    val_per_class=1,
    test_per_class=1,
    figure_images=2,
    threads=1,
)


def _install(kill_at: int | None, phase: str, log: list[str]) -> None:
    """Wrap os.replace: log each atomic write's final name; SIGKILL at write ``kill_at``."""

    def replace(src, dst, *args, **kwargs):
        found = _TEMP.match(Path(src).name)
        if not found:
            return _real_replace(src, dst, *args, **kwargs)
        index = len(log)
        log.append(str(Path(dst)))
        if index == kill_at and phase == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = _real_replace(src, dst, *args, **kwargs)
        if index == kill_at and phase == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    os.replace = replace


def _job(mode: str, folder: Path, *, resume: bool) -> int:
    if mode == "train":
        data = make_synthetic(seed=3, train_per_class=4, val_per_class=1, test_per_class=0)
        cfg = TrainConfig(epochs=EPOCHS, batch_size=16, seed=1, device="cpu")
        result = train(preset("baseline"), cfg, data, folder, resume=resume)
        return 0 if result.status == "finished" else 3
    result = run_study(SPEC, folder)
    return 0 if result.status == "finished" else 3


def _fork(fn) -> int:
    """Run ``fn()`` in a forked child; its exit status (negative: killed by that signal)."""
    pid = os.fork()
    if pid == 0:  # the child: never return into the parent's code
        code = 1
        try:
            code = fn()
        except BaseException as exc:  # report, then exit without running the parent's atexit
            print(f"child error: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def main(mode: str, work: Path) -> None:
    torch.set_num_threads(1)  # identical arithmetic in every child; no OpenMP pool to fork
    ref = work / "ref"

    # The reference runs in this process: it also warms up what the first run imports
    # lazily (torch._dynamo with the optimiser: seconds), which every child then inherits.
    # One thread, so no OpenMP pool exists when the children fork.
    log: list[str] = []
    _install(None, "", log)
    try:
        report = {"ref": _job(mode, ref, resume=False), "scenarios": []}
    finally:
        os.replace = _real_replace
    writes = [os.path.relpath(p, ref) for p in log]
    report["writes"] = writes
    # The study's report files are many; "after" write i equals "before" write i + 1 minus
    # a temporary file, so the study is killed before each rename only (time: see the test).
    phases = ("before", "after") if mode == "train" else ("before",)
    for index in range(len(writes)):
        for phase in phases:
            folder = work / f"kill-{index:02d}-{phase}"

            def killed(index=index, phase=phase, folder=folder) -> int:
                _install(index, phase, [])
                return _job(mode, folder, resume=False)

            killed_rc = _fork(killed)
            resumed_rc = _fork(lambda folder=folder: _job(mode, folder, resume=True))
            report["scenarios"].append(
                {
                    "write": index,
                    "file": writes[index],
                    "phase": phase,
                    "folder": folder.name,
                    "killed_rc": killed_rc,
                    "resumed_rc": resumed_rc,
                }
            )
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
