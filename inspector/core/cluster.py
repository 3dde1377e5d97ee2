"""Ray: the study's (model, seed) runs and a dataset evaluation spread over a cluster.

Ray is an optional extra (``pip install 'vit-inspector[cluster]'``). ``ray_session(address)``
joins an existing cluster (``ray://head:10001`` or ``auto``) or, with ``None`` / ``"local"``,
starts a local one for the block (and stops it after); a Ray already initialised by the caller
is used as it is. What a cluster needs: the same vit-inspector (and torch) version on every
node, and the data, checkpoints and study folder on storage that every node sees under the
same path (results are written by the workers, straight into the study folder).

- ``study.on_ray.run_study_on_ray``: one Ray task per (model, seed), each training (or
  resuming) its run through the same ``_run_one`` as ``--jobs``, so the study's ``study.json``
  checks, reuse and resume are unchanged and the report is the one ``--jobs 1`` writes.
- ``evaluate_on_ray``: the dataset is cut into shards on batch boundaries (every forward sees
  exactly the batches one process would), each shard is evaluated by a task, the per-image
  rows are concatenated in order and summarised as one process does, and the dataset-level
  segmentation totals of data with masks (integer counts, an exactly rounded AP sum) are
  merged into the numbers one process gets.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .data.types import ImageDataset
from .evaluation import EvaluationResult, _summarise
from .load_options import LoadOptions
from .metrics_segmentation import SegmentationAccumulator
from .saliency import MapSettings


class ClusterError(RuntimeError):
    """Ray is missing, or the cluster cannot be reached."""


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ClusterError(
            "Ray is not installed; install the cluster extra: pip install 'vit-inspector[cluster]'"
        ) from exc
    return ray


@contextlib.contextmanager
def ray_session(address: str | None = None) -> Iterator[Any]:
    """The ``ray`` module, connected to ``address`` (None / "local": a local cluster)."""
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        if address in (None, "", "local"):
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except Exception as exc:  # ConnectionError, RuntimeError, ...: one line for the user
        where = address or "local"
        raise ClusterError(f"cannot start or reach the Ray cluster {where}: {exc}") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


# ----------------------------------------------------------------------------- evaluation
def _evaluate_task(
    checkpoint: str,
    options: LoadOptions | None,
    data: ImageDataset,
    methods: list[str],
    settings: MapSettings,
    kwargs: dict[str, Any],
) -> EvaluationResult:
    import torch

    from .evaluation import evaluate_saliency
    from .explain import open_model

    torch.set_num_threads(1)
    loaded = open_model(checkpoint, device="cpu", options=options)
    return evaluate_saliency(loaded, data, methods, settings, **kwargs)


def evaluate_on_ray(
    checkpoint: str | os.PathLike,
    data: ImageDataset,
    methods: Sequence[str],
    settings: MapSettings,
    *,
    options: LoadOptions | None = None,
    shards: int | None = None,
    batch_size: int = 64,
    **kwargs: Any,
) -> EvaluationResult:
    """``evaluate_saliency`` over ``data``, one Ray task per shard (``ray_session`` is open).

    Shards are whole batches, so the rows are those of one process; ``kwargs`` are
    ``evaluate_saliency``'s (smoothing, threshold, faithfulness_steps).
    """
    ray = _ray()
    started = time.perf_counter()
    batches = max(1, -(-len(data) // batch_size))
    n = max(1, min(shards or int(ray.cluster_resources().get("CPU", 1)), batches))
    per = -(-batches // n) * batch_size  # images per shard, a multiple of the batch size
    task = ray.remote(num_cpus=1, max_retries=0)(_evaluate_task)
    path = str(Path(checkpoint).resolve())
    kw = {**kwargs, "batch_size": batch_size}
    futures = [
        task.remote(path, options, data.subset(list(range(a, min(a + per, len(data))))),
                    list(methods), settings, kw)
        for a in range(0, max(len(data), 1), per)
    ]  # fmt: skip
    parts: list[EvaluationResult] = ray.get(futures)
    seconds = time.perf_counter() - started
    result = EvaluationResult(
        rows=[row for part in parts for row in part.rows],
        methods=list(methods),
        settings=parts[0].settings,
        images_per_second=len(data) / max(seconds, 1e-9),
        accumulators=merge_accumulators(parts, methods),
    )
    result.segmentation = {m: acc.result().to_dict() for m, acc in result.accumulators.items()}
    result.summary = _summarise(result)
    return result


def merge_accumulators(
    parts: Sequence[EvaluationResult], methods: Sequence[str]
) -> dict[str, SegmentationAccumulator]:
    """Each method's segmentation totals over all ``parts`` (shards in dataset order), in the
    order of ``methods`` as one process lists them.

    Counts are integers and the AP sum is correctly rounded (``math.fsum``), so the merged
    totals equal those of one pass over the whole dataset, bit for bit."""
    merged: dict[str, SegmentationAccumulator] = {}
    for part in parts:
        for method, acc in part.accumulators.items():
            merged.setdefault(method, SegmentationAccumulator()).merge(acc)
    return {m: merged[m] for m in methods if m in merged}


def ray_evaluator(
    address: str | None, checkpoint: str | os.PathLike, options: LoadOptions | None
) -> Callable[..., EvaluationResult]:
    """A drop-in for ``evaluate_saliency(loaded, data, methods, settings, **kw)`` that runs
    ``evaluate_on_ray`` in a ``ray_session(address)``; the workers open ``checkpoint``
    themselves (on the CPU), the driver's ``loaded`` model is not shipped."""

    def evaluate(
        _loaded: Any,
        data: ImageDataset,
        methods: Sequence[str],
        settings: MapSettings,
        *,
        progress: Any = None,
        **kwargs: Any,
    ) -> EvaluationResult:
        with ray_session(address):
            result = evaluate_on_ray(checkpoint, data, methods, settings, options=options, **kwargs)
        if progress:
            progress(len(data), f"{len(data)}/{len(data)} images")
        return result

    return evaluate
