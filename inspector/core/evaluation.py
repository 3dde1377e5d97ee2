"""Dataset-level evaluation: accuracy plus, per saliency method, SMM and localisation metrics.

Used by ``vit-inspector evaluate`` and the ablation study. Captures are batched (one forward
per batch; gradients, when a method needs them, one backward per batch).
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .capture import capture_batch, compute_gradients
from .data.types import ImageDataset
from .explain import LoadedModel, PreparedImage, Smoothing
from .export import save_json, save_text
from .metrics import pointing_tolerance as pointing_tolerance_px
from .metrics_faithfulness import deletion_insertion
from .metrics_segmentation import SegmentationAccumulator
from .pipeline import ExplainSettings, explain_one
from .preprocess import prepare_image, to_tensor
from .saliency import MapSettings

Progress = Callable[[int, str], None]


@dataclass
class EvaluationResult:
    """Per-image rows and the per-method summary of one evaluation."""

    rows: list[dict[str, Any]]
    methods: list[str]
    settings: dict[str, Any]
    images_per_second: float
    summary: dict[str, Any] = field(default_factory=dict)
    # method -> Chefer et al.'s scores accumulated over the images with a mask
    segmentation: dict[str, dict[str, Any]] = field(default_factory=dict)
    # method -> the running totals behind ``segmentation``, so that shards evaluated apart
    # (evaluate --ray) merge into exactly the numbers of one process; not written out.
    accumulators: dict[str, SegmentationAccumulator] = field(
        default_factory=dict, repr=False, compare=False
    )

    def summary_markdown(self) -> str:
        s = self.summary
        lines = [
            f"accuracy {s['accuracy']:.4f} over {s['images']} images "
            f"({self.images_per_second:.1f} images/s)",
            "",
        ]
        if s.get("methods"):
            present = {k for per in s["methods"].values() for k in per}
            metrics = [
                m
                for m in (
                    "smm",
                    "pointing_game",
                    "relevance_mass",
                    "relevance_rank_accuracy",
                    "miou",
                    "map",
                    "deletion_auc",
                    "insertion_auc",
                )
                if m in present
            ]
            lines.append("| method | " + " | ".join(metrics) + " |")
            lines.append("|---" * (len(metrics) + 1) + "|")
            for method, per in s["methods"].items():
                cells = []
                for m in metrics:
                    stat = per.get(m)
                    cells.append(
                        "n/a"
                        if not stat or stat["mean"] is None
                        else f"{stat['mean']:.3f} ± {stat['std']:.3f}"
                    )
                lines.append(f"| {method} | " + " | ".join(cells) + " |")
            lines.append("")
            tol = self.settings.get("pointing_tolerance_px")
            within = "" if tol is None else f"; pointing game within {tol:.2f} px of the mask"
            lines.append(
                f"SMM threshold {self.settings['threshold']}{within}; mean ± standard "
                f"deviation over images where the metric is defined."
            )
        if s.get("segmentation"):
            lines += ["", _segmentation_markdown(s["segmentation"])]
        return "\n".join(lines)


def _segmentation_markdown(segmentation: dict[str, dict[str, Any]]) -> str:
    lines = [
        "Segmentation (Chefer et al. 2021), accumulated over the dataset:",
        "",
        "| method | pixel accuracy | mIoU | mAP | images |",
        "|---|---|---|---|---|",
    ]
    for method, seg in segmentation.items():
        cells = [
            "n/a" if seg[k] is None else f"{seg[k]:.4f}" for k in ("pixel_accuracy", "miou", "map")
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {seg['images']} |")
    return "\n".join(lines)


def _stats(values: Sequence[Any]) -> dict[str, Any]:
    defined = [
        float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))
    ]
    if not defined:
        return {"mean": None, "std": None, "defined": 0}
    arr = np.asarray(defined, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "defined": len(defined)}


def evaluate_saliency(
    loaded: LoadedModel,
    data: ImageDataset,
    methods: Sequence[str],
    settings: MapSettings,
    *,
    smoothing: Smoothing = "none",
    threshold: float = 0.3,
    batch_size: int = 64,
    faithfulness_steps: int = 0,
    pointing_tolerance: float | None = None,
    progress: Progress | None = None,
) -> EvaluationResult:
    """Predict every image and score each method's map against the dataset's masks.

    Args:
        loaded: the model and its metadata.
        data: images, labels and (optionally) masks; without masks only accuracy is computed.
        methods: saliency methods (``saliency.METHODS``).
        settings: shared map settings; the method is replaced per method.
        smoothing, threshold: as for a single map.
        batch_size: images per forward (and backward) pass.
        faithfulness_steps: when > 0, also the deletion and insertion AUC of every map (RISE
            protocol, this many steps; ``2 * (steps + 1)`` extra forward passes per image and
            method, batched), which needs no mask.
        pointing_tolerance: the pointing game's, in pixels of the model's input; None = 15 px
            at 224 px scaled to the input size (:func:`~inspector.core.metrics.
            pointing_tolerance`).

    Besides the per-image rows, the summary holds under ``segmentation`` Chefer et al.'s
    pixel accuracy, mIoU and mAP per method accumulated over the dataset
    (:mod:`inspector.core.metrics_segmentation`; the per-image ``miou`` column is each image's
    own, whose mean is not the dataset mIoU).
        progress: ``progress(done, text)`` after each batch.
    """
    cfg = loaded.checkpoint.config
    pre = loaded.checkpoint.preprocess
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    needs_grads = any(settings.replace(method=m).needs_gradients for m in methods)
    model = loaded.model
    tolerance = (
        pointing_tolerance_px((cfg.image_size, cfg.image_size))
        if pointing_tolerance is None
        else float(pointing_tolerance)
    )
    segmentation = {m: SegmentationAccumulator() for m in methods}

    def predict(batch: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, K) probabilities
        out = model(batch.to(loaded.device)).float().cpu()
        return out if cfg.output_softmax else out.softmax(dim=-1)

    for start in range(0, len(data), batch_size):
        stop = min(start + batch_size, len(data))
        images = data.images[start:stop].permute(0, 2, 3, 1).numpy()  # (b, H, W, 3) uint8
        displays = [prepare_image(im, pre) for im in images]
        x = to_tensor(np.stack(displays), pre)  # (b, 3, S, S)
        caps = capture_batch(loaded.model, x, device=loaded.device)
        if needs_grads:
            compute_gradients(caps, batch_size=batch_size, target=settings.target)
        for j, cap in enumerate(caps):
            i = start + j
            label = int(data.labels[i])
            row: dict[str, Any] = {
                "id": data.ids[i],
                "label": label,
                "predicted": cap.predicted_class,
                "correct": int(cap.predicted_class == label),
                "probability": float(cap.probabilities[cap.predicted_class]),
            }
            mask = None if data.masks is None else data.masks[i].numpy()
            prepared = PreparedImage(images[j], displays[j], x[j : j + 1])
            for method in methods if (mask is not None or faithfulness_steps) else ():
                # The one per-image pipeline, with this batch's capture (and its gradients).
                result = explain_one(
                    loaded,
                    prepared,
                    ExplainSettings(
                        map=settings.replace(method=method),
                        smoothing=smoothing,
                        threshold=threshold,
                        pointing_tolerance=tolerance,
                        show_overlay=False,
                    ),
                    mask=mask,
                    capture=cap,
                )
                if result.metrics is not None:
                    for key, value in result.metrics.items():
                        row[f"{method}/{key}"] = value
                    segmentation[method].add(result.full, result.mask)
                if faithfulness_steps:
                    auc = deletion_insertion(
                        predict,
                        x[j],
                        result.full,
                        steps=faithfulness_steps,
                        class_index=cap.predicted_class,
                        batch_size=batch_size,
                    )
                    row[f"{method}/deletion_auc"] = auc["deletion_auc"]
                    row[f"{method}/insertion_auc"] = auc["insertion_auc"]
            rows.append(row)
        if progress:
            progress(stop, f"{stop}/{len(data)} images")
    seconds = time.perf_counter() - started
    result = EvaluationResult(
        rows=rows,
        methods=list(methods),
        settings={
            **settings.to_dict(),
            "smoothing": smoothing,
            "threshold": threshold,
            "pointing_tolerance_px": tolerance,
            "methods": list(methods),
        },
        images_per_second=len(data) / max(seconds, 1e-9),
        segmentation={m: acc.result().to_dict() for m, acc in segmentation.items() if acc.images},
        accumulators={m: acc for m, acc in segmentation.items() if acc.images},
    )
    result.summary = _summarise(result)
    return result


def _summarise(result: EvaluationResult) -> dict[str, Any]:
    rows = result.rows
    summary: dict[str, Any] = {
        "images": len(rows),
        "accuracy": float(np.mean([r["correct"] for r in rows])) if rows else float("nan"),
        "images_per_second": result.images_per_second,
        "settings": result.settings,
        "methods": {},
        "segmentation": result.segmentation,
    }
    for method in result.methods:
        keys = sorted({k.split("/", 1)[1] for r in rows for k in r if k.startswith(method + "/")})
        if keys:
            summary["methods"][method] = {
                k: _stats([r.get(f"{method}/{k}") for r in rows]) for k in keys
            }
    return summary


def write_evaluation(result: EvaluationResult, out: Path, *, overwrite: bool = False) -> None:
    """``per_image.csv``, ``summary.json`` and ``summary.md`` in ``out`` (atomic)."""
    columns: list[str] = []
    for row in result.rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="")
    writer.writeheader()
    for row in result.rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    save_text(out / "per_image.csv", buf.getvalue(), overwrite=overwrite)
    save_json(out / "summary.json", result.summary, overwrite=overwrite)
    save_text(out / "summary.md", result.summary_markdown() + "\n", overwrite=overwrite)
