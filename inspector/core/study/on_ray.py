"""The study's (model, seed) runs as Ray tasks (``vit-inspector ablate --ray``); see
``inspector.core.cluster`` for what a cluster needs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..cluster import _ray
from .spec import StudySpec, load_study_data

_TASK: dict[str, Any] = {}


def _study_task(
    run_one: Callable[..., dict],
    spec: StudySpec,
    preset_name: str,
    seed: int,
    out_dir: str,
    threads: int,
    overwrite: bool = False,
) -> dict:
    """One (model, seed) run inside a Ray worker process; ``run_one`` is the runner's
    ``_run_one`` (passed in, by reference, so that this module does not import the runner)."""
    import torch

    torch.set_num_threads(threads)
    if _TASK.get("spec") != spec:  # a worker keeps its dataset for its next runs
        _TASK.update(spec=spec, data=load_study_data(spec))
    return run_one(
        spec,
        preset_name,
        seed,
        Path(out_dir),
        _TASK["data"],
        threading.Event(),
        lambda *_: None,
        overwrite,
    )


def run_study_on_ray(
    spec: StudySpec,
    runs: Sequence[tuple[str, int]],
    out: Path,
    stop: Any,
    progress: Any,
    run_one: Callable[..., dict],
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """The records of ``runs``, each trained by a Ray task (``ray_session`` is open)."""
    ray = _ray()
    threads = spec.threads or 1
    task = ray.remote(num_cpus=threads, max_retries=0)(_study_task)
    futures = {
        task.remote(run_one, spec, p, s, str(out.resolve()), threads, overwrite): (p, s)
        for p, s in runs
    }  # fmt: skip
    records: list[dict[str, Any]] = []
    pending = list(futures)
    try:
        while pending:
            if stop.is_set():
                for f in pending:
                    ray.cancel(f)
                break
            done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
            for f in done:
                record = ray.get(f)  # a task's exception is raised here, in the driver
                progress("model_done", record["preset"], record["seed"], record)
                records.append(record)
    except KeyboardInterrupt:
        for f in pending:
            ray.cancel(f)
        raise
    return records
