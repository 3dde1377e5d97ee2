"""The ablation study's report: tables (Markdown, CSV, JSON) (figures in :mod:`.figures`).

Everything is rendered in memory first and then committed with :func:`commit_files`, which
stages every file under a temporary name and replaces them only when all were written, so a
failing run never leaves a half-written report in place of a good one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..data.types import DatasetSplits
from ..export import png_bytes, to_json
from ..train import HISTORY, LAST
from .figures import (
    confusion_image,
    curves_image,
    figure_cells,
    figure_indices,
    saliency_figure,
)
from .spec import StudySpec, run_dir, summarise

# (key in a run record, column title): the paper's columns, in its order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("train_acc", "train acc"),
    ("accuracy", "test acc"),
    ("recall", "recall"),
    ("precision", "prec"),
    ("f1", "F1"),
    ("roc_auc", "ROC AUC"),
    ("smm", "SMM"),
)


# The paper's Table (Tiny ImageNet, 10 classes; docs/ARCHITECTURE.md section 5), same columns.
PAPER_RESULTS: dict[str, tuple[float, ...]] = {
    "baseline": (0.476, 0.328, 0.317, 0.367, 0.312, 0.766, 0.025),
    "pos-learned": (0.536, 0.390, 0.365, 0.384, 0.376, 0.802, 0.065),
    "pos-integer": (0.476, 0.318, 0.302, 0.325, 0.304, 0.769, 0.026),
    "blocks-1": (0.429, 0.336, 0.332, 0.348, 0.325, 0.747, 0.009),
    "blocks-2": (0.475, 0.320, 0.309, 0.323, 0.306, 0.751, 0.039),
    "blocks-8": (0.374, 0.310, 0.309, 0.279, 0.280, 0.739, 0.017),
    "heads-1": (0.475, 0.352, 0.341, 0.337, 0.324, 0.771, 0.041),
    "heads-2": (0.460, 0.372, 0.370, 0.348, 0.335, 0.771, 0.001),
    "heads-8": (0.523, 0.340, 0.321, 0.373, 0.337, 0.777, 0.029),
    "hidden-4": (0.388, 0.346, 0.342, 0.311, 0.310, 0.735, 0.021),
    "hidden-16": (0.510, 0.374, 0.369, 0.356, 0.348, 0.789, 0.026),
    "hidden-32": (0.100, 0.100, 0.100, 0.010, 0.018, 0.502, 0.017),
    "no-residual": (0.100, 0.100, 0.100, 0.010, 0.018, 0.500, 0.297),
    "no-layernorm": (0.100, 0.100, 0.100, 0.010, 0.018, 0.500, 0.482),
}


# ------------------------------------------------------------------------------- tables
def aggregate(spec: StudySpec, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per preset: mean and sample std over seeds of every column, plus notes."""
    rows = []
    for name in spec.presets:
        runs = [r for r in records if r["preset"] == name]
        row: dict[str, Any] = {"model": name, "seeds": len(runs)}
        for key, _ in COLUMNS:
            row[key] = summarise([r.get(key) for r in runs])
        row["smm_defined"] = [r.get("smm_defined", 0) for r in runs]
        row["train_seconds"] = float(sum(r.get("train_seconds") or 0.0 for r in runs))
        row["eval_seconds"] = float(sum(r.get("eval_seconds") or 0.0 for r in runs))
        row["notes"] = "; ".join(
            f"seed {r['seed']}: {r['status']}" + (f" ({r['note']})" if r.get("note") else "")
            for r in runs
            if r["status"] != "finished"
        )
        rows.append(row)
    return rows


def format_cell(stat: dict[str, Any]) -> str:
    if stat["mean"] is None:
        return "n/a"
    if stat["std"] is None:
        return f"{stat['mean']:.3f}"
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def _split_sizes(data: DatasetSplits) -> str:
    return f"train {len(data.train)}, val {len(data.val)}, test {len(data.test)} images"


def report_markdown(
    spec: StudySpec,
    rows: list[dict[str, Any]],
    records: list[dict[str, Any]],
    data: DatasetSplits,
    wall_seconds: float,
    figure_ids: list[str],
) -> str:
    cfg = spec.train_config(0)
    masks = (
        "none (SMM not computed)"
        if data.test.masks is None
        else "exact object masks"
        if spec.is_synthetic
        else "bounding-box masks"
    )
    seeds_text = ", ".join(map(str, spec.seeds))
    lines = [
        f"# Ablation study: {data.source.get('kind', spec.data)}, {data.train.num_classes} classes",
        "",
    ]
    lines.append("| model | " + " | ".join(t for _, t in COLUMNS) + " | notes |")
    lines.append("|---" * (len(COLUMNS) + 2) + "|")
    for row in rows:
        lines.append(
            f"| {row['model']} | "
            + " | ".join(format_cell(row[k]) for k, _ in COLUMNS)
            + f" | {row['notes']} |"
        )
    spread = (
        "mean ± sample standard deviation (ddof=1) over seeds " + seeds_text
        if len(spec.seeds) > 1
        else f"one seed ({seeds_text})"
    )
    lines += [
        "",
        f"Each cell: {spread}. Test metrics on the test split; train acc is the running "
        "accuracy of the last epoch (as in training).",
        "",
        "## Settings",
        "",
        f"- data: `{spec.data}` ({_split_sizes(data)}; data seed {spec.data_seed}); "
        f"SMM masks: {masks}",
        f"- training: the paper's hyper-parameters: {cfg.epochs} epochs, batch {cfg.batch_size}, "
        f"{cfg.optimizer} (betas {cfg.betas}, weight decay {cfg.weight_decay}), learning rate "
        f"{cfg.lr} with linear warm-up over {cfg.warmup_fraction:.0%} of the steps then linear "
        f"decay, gradient clipping {cfg.grad_clip}; seeds {seeds_text}",
        "- paper-faithful double softmax: "
        + (
            "**on**: every model ends with a softmax and the cross-entropy is applied to its "
            "probabilities (the authors' code)"
            if spec.paper_faithful
            else "off (logits and a plain cross-entropy)"
        ),
        "- evaluated checkpoint: `last.pt`, the model after the final epoch (the paper reports "
        "final models; `best.pt` is chosen on the validation split, which for Tiny ImageNet is "
        "the test set)",
        f"- SMM: method `{spec.method}`, head fusion `{spec.fusion}`, discard ratio "
        f"{spec.discard_ratio}, threshold {spec.threshold}, smoothing `{spec.smoothing}`; "
        f"Jaccard index of the map pixels above the threshold with the mask, averaged over "
        f"the test images where it is defined",
        "",
        "## Wall times",
        "",
        f"This invocation: {wall_seconds:.1f} s ("
        f"{sum(not r.get('reused', False) for r in records)} runs trained now, "
        f"{sum(bool(r.get('reused')) for r in records)} reused; jobs {spec.jobs}, device "
        f"`{spec.device}`).",
        "",
        "| model | training s (sum over seeds) | evaluation s |",
        "|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['train_seconds']:.1f} | {r['eval_seconds']:.1f} |" for r in rows
    ]
    lines += [
        "",
        "## Figures",
        "",
        f"- `saliency.png`: every model (seed {spec.seeds[0]}) on the test images "
        f"{', '.join(figure_ids)}; first row the images with their mask outline",
        "- `confusion/<model>.png`: confusion matrices"
        + (" summed over seeds" if len(spec.seeds) > 1 else ""),
        "- `curves/<model>.png`: training and validation loss and accuracy per epoch",
        "",
    ]
    paper = [n for n in spec.presets if n in PAPER_RESULTS]
    if paper:
        lines += [
            "## The paper's table (Tiny ImageNet, 10 classes) for comparison",
            "",
            "| model | " + " | ".join(t for _, t in COLUMNS) + " |",
            "|---" * (len(COLUMNS) + 1) + "|",
        ]
        lines += [
            f"| {n} | " + " | ".join(f"{v:.3f}" for v in PAPER_RESULTS[n]) + " |" for n in paper
        ]
        lines.append("")
    return "\n".join(lines)


def report_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["model", "seeds"]
    for key, _ in COLUMNS:
        header += [f"{key}_mean", f"{key}_std"]
    writer.writerow(header + ["notes"])
    for row in rows:
        cells: list[Any] = [row["model"], row["seeds"]]
        for key, _ in COLUMNS:
            cells += ["" if row[key][s] is None else row[key][s] for s in ("mean", "std")]
        writer.writerow(cells + [row["notes"]])
    return buf.getvalue()


# ------------------------------------------------------------------------------- commit
def commit_files(files: dict[Path, bytes]) -> None:
    """Write all files under temporary names, then move them onto their names.

    If writing any of them fails, no file is replaced and the temporary files are removed
    (each :func:`atomic_path` cleans up when the exception passes through it).
    """
    with contextlib.ExitStack() as stack:
        for path, payload in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = stack.enter_context(atomic_path(path, overwrite=True))
            with open(tmp, "wb") as fh:
                fh.write(payload)


def write_report(
    spec: StudySpec,
    out: Path,
    records: list[dict[str, Any]],
    data: DatasetSplits,
    *,
    wall_seconds: float,
) -> tuple[list[dict[str, Any]], list[Path]]:
    """Render the whole report in memory, then commit it in one go. Returns the aggregated
    rows and the files written."""
    rows = aggregate(spec, records)
    test = data.test
    meta = {"study": spec.to_dict()}
    files: dict[Path, bytes] = {}
    for name in spec.presets:
        runs = [r for r in records if r["preset"] == name and r.get("confusion") is not None]
        if runs:
            matrix = np.sum([np.asarray(r["confusion"]) for r in runs], axis=0)
            files[out / "confusion" / f"{name}.png"] = png_bytes(
                confusion_image(
                    matrix, test.class_names, f"{name}: test confusion ({len(runs)} seed(s))"
                ),
                meta,
            )
        histories = {s: _read_history(run_dir(out, name, s)) for s in spec.seeds}
        files[out / "curves" / f"{name}.png"] = png_bytes(
            curves_image(histories, spec.epochs, name), meta
        )
    indices = figure_indices(test.labels, spec.figure_images, test.num_classes)
    first = {
        r["preset"]: r.get("smm_per_image") or [] for r in records if r["seed"] == spec.seeds[0]
    }
    smm = {
        name: [vals[i] if i < len(vals) else None for i in indices] for name, vals in first.items()
    }
    caption = (
        f"{spec.method} (fusion {spec.fusion}, discard {spec.discard_ratio}, smoothing "
        f"{spec.smoothing}); SMM threshold {spec.threshold}; seed {spec.seeds[0]}"
    )
    files[out / "saliency.png"] = png_bytes(
        saliency_figure(test, indices, figure_cells(spec, out, test, indices), smm, caption), meta
    )
    figure_ids = [test.ids[i] for i in indices]
    files[out / "report.md"] = report_markdown(
        spec, rows, records, data, wall_seconds, figure_ids
    ).encode()
    files[out / "report.csv"] = report_csv(rows).encode()
    files[out / "report.json"] = (
        to_json(
            {
                "study": spec.to_dict(),
                "training": spec.training_identity(),
                "saliency_settings": spec.eval_settings(),
                "dataset": data.source,
                "split_sizes": {k: len(data.split(k)) for k in ("train", "val", "test")},
                "checkpoint": LAST,
                "wall_seconds": wall_seconds,
                "figure_images": figure_ids,
                "figure_indices": indices,
                "rows": rows,
                "runs": records,
            }
        )
        + "\n"
    ).encode()
    commit_files(files)
    return rows, sorted(files)


def _read_history(folder: Path) -> list[dict[str, Any]]:
    try:
        return json.loads((folder / HISTORY).read_text())
    except (OSError, ValueError):
        return []


__all__ = [
    "COLUMNS",
    "PAPER_RESULTS",
    "aggregate",
    "commit_files",
    "confusion_image",
    "curves_image",
    "figure_indices",
    "format_cell",
    "report_csv",
    "report_markdown",
    "saliency_figure",
    "write_report",
]
