"""The ablation study's report: tables (Markdown, CSV, JSON) and figures drawn with PIL.

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
import torch
from PIL import Image, ImageDraw, ImageFont

from .ablation import StudySpec, run_dir, summarise
from .atomic import atomic_path
from .checkpoint import load_checkpoint
from .data.types import DatasetSplits, ImageDataset
from .explain import capture_image, from_checkpoint, prepare, saliency_image
from .export import png_bytes, to_json
from .postprocess import overlay
from .train import HISTORY, LAST

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

# The paper's Table (Tiny ImageNet, 10 classes; MISSION.md section 1), same columns.
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

SCALE = 2  # figure cells are the 64 px images drawn at 128 px
BLUE = np.array([8, 48, 107], dtype=np.float64)
WHITE = np.array([255, 255, 255], dtype=np.float64)


def _font(size: int = 12) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the bitmap font
        return ImageFont.load_default()


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


# ------------------------------------------------------------------------------ figures
def confusion_image(matrix: np.ndarray, class_names: Sequence[str], title: str) -> np.ndarray:
    """A heat map of a confusion matrix (rows = true class, columns = predicted class).

    Each cell shows its count; its colour is the count's share of its row (white 0 ->
    dark blue 1), so a perfect classifier is a dark diagonal.
    """
    m = np.asarray(matrix, dtype=np.int64)
    c = m.shape[0]
    cell = 40 if c <= 12 else 24
    left, top = 56, 56
    legend_w = 12 + 7 * max(len(f"{i} {n}") for i, n in enumerate(class_names))
    width = left + c * cell + 16 + legend_w
    height = max(top + c * cell + 40, top + 16 * c + 20)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font, small = _font(13), _font(11)
    draw.text((8, 6), title, fill="black", font=font)
    draw.text((left, 26), "predicted class", fill="black", font=small)
    draw.text((4, top - 14), "true", fill="black", font=small)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros(m.shape), where=rows > 0)
    for i in range(c):
        draw.text((left - 20, top + i * cell + cell // 2 - 6), str(i), fill="black", font=small)
        draw.text((left + i * cell + cell // 2 - 4, top - 14), str(i), fill="black", font=small)
        for j in range(c):
            rgb = tuple(int(v) for v in np.rint((1 - share[i, j]) * WHITE + share[i, j] * BLUE))
            x0, y0 = left + j * cell, top + i * cell
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=rgb, outline=(200,) * 3)
            text = str(int(m[i, j]))
            tw = draw.textlength(text, font=small)
            draw.text(
                (x0 + (cell - tw) / 2, y0 + cell / 2 - 6),
                text,
                font=small,
                fill="white" if share[i, j] > 0.5 else "black",
            )
    lx = left + c * cell + 16
    for i, name in enumerate(class_names):
        draw.text((lx, top + 16 * i), f"{i} {name}", fill="black", font=small)
    draw.text(
        (left, top + c * cell + 8), "colour: share of the true class's row", fill="gray", font=small
    )
    return np.asarray(img)


def _chart(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    title: str,
    series: list[tuple[list[float], tuple[int, int, int]]],
    epochs: int,
    y_range: tuple[float, float] | None,
) -> None:
    """Axes, three y ticks, first/last epoch ticks and one polyline per series."""
    x0, y0, x1, y1 = box
    small = _font(11)
    values = [v for ys, _ in series for v in ys if v is not None and np.isfinite(v)]
    lo, hi = y_range or ((min(values), max(values)) if values else (0.0, 1.0))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    draw.text((x0, y0 - 18), title, fill="black", font=_font(12))
    draw.rectangle([x0, y0, x1, y1], outline="black")
    # Enough decimals that the three ticks differ (a loss moving in its third digit).
    digits = int(min(6, max(0, 2 - np.floor(np.log10(hi - lo)))))
    for k in range(3):
        v = lo + (hi - lo) * k / 2
        y = y1 - (y1 - y0) * k / 2
        draw.line([x0 - 4, y, x0, y], fill="black")
        label = f"{v:.{digits}f}"
        draw.text(
            (x0 - 6 - draw.textlength(label, font=small), y - 6), label, fill="black", font=small
        )
    for e in sorted({1, epochs}):
        x = x0 + (x1 - x0) * ((e - 1) / max(1, epochs - 1))
        draw.text((x - 4, y1 + 4), str(e), fill="black", font=small)
    draw.text(((x0 + x1) / 2 - 14, y1 + 4), "epoch", fill="black", font=small)

    def point(e: int, v: float) -> tuple[float, float]:
        return (
            x0 + (x1 - x0) * ((e - 1) / max(1, epochs - 1)),
            y1 - (y1 - y0) * (min(max(v, lo), hi) - lo) / (hi - lo),
        )

    for ys, color in series:
        pts = [point(e + 1, v) for e, v in enumerate(ys) if v is not None and np.isfinite(v)]
        if len(pts) > 1:
            draw.line(pts, fill=color, width=2)
        for x, y in pts if len(pts) <= 20 else []:  # dots only while they stay apart
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=color)


def curves_image(histories: dict[int, list[dict[str, Any]]], epochs: int, title: str) -> np.ndarray:
    """Training (blue) and validation (orange) loss and accuracy per epoch, one line per
    seed."""
    width, height = 760, 300
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.text((10, 6), title, fill="black", font=_font(14))
    train_c, val_c = (31, 119, 180), (255, 127, 14)
    for box, name, keys, y_range in (
        ((60, 52, 360, 252), "loss", ("train_loss", "val_loss"), None),
        ((440, 52, 740, 252), "accuracy", ("train_acc", "val_accuracy"), (0.0, 1.0)),
    ):
        series = []
        for hist in histories.values():
            series.append(([r.get(keys[0]) for r in hist], train_c))
            series.append(([r.get(keys[1]) for r in hist], val_c))
        _chart(draw, box, name, series, epochs, y_range)
    draw.text((60, 276), "train", fill=train_c, font=_font(12))
    draw.text((110, 276), "validation", fill=val_c, font=_font(12))
    if len(histories) > 1:
        draw.text(
            (200, 276), f"one line per seed ({len(histories)} seeds)", fill="gray", font=_font(12)
        )
    return np.asarray(img)


def figure_indices(labels: torch.Tensor, count: int, num_classes: int) -> list[int]:
    """Deterministic figure images: image ``k`` is the ``(k // C)``-th test image of class
    ``k % C`` (so one per class first), skipping classes that run out."""
    by_class = [torch.nonzero(labels == c).flatten().tolist() for c in range(num_classes)]
    chosen: list[int] = []
    k = 0
    while len(chosen) < min(count, len(labels)) and k < count * num_classes + len(labels):
        c, j = k % num_classes, k // num_classes
        if j < len(by_class[c]):
            chosen.append(by_class[c][j])
        k += 1
    return chosen


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of the mask whose 4-neighbourhood leaves it: ``(H, W)`` bool."""
    m = np.pad(mask, 1, mode="constant")
    inner = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return mask & ~inner


def figure_cells(
    spec: StudySpec, out: Path, test: ImageDataset, indices: list[int]
) -> dict[str, list[tuple[np.ndarray, int]]]:
    """Per preset (the first seed's model): the overlay of each figure image and the
    predicted class, computed with the study's saliency settings."""
    cells: dict[str, list[tuple[np.ndarray, int]]] = {}
    settings = spec.map_settings()
    for name in spec.presets:
        path = run_dir(out, name, spec.seeds[0]) / LAST
        if not path.exists():
            continue
        loaded = from_checkpoint(load_checkpoint(path))
        cfg = loaded.checkpoint.config
        row = []
        for i in indices:
            image = prepare(test.images[i].permute(1, 2, 0).numpy(), loaded)
            cap = capture_image(loaded, image)
            _, full = saliency_image(
                cap,
                settings,
                image_size=cfg.image_size,
                patch_size=cfg.patch_size,
                smoothing=spec.smoothing,
            )  # type: ignore[arg-type]
            row.append((overlay(image.display, full), cap.predicted_class))
        cells[name] = row
    return cells


def saliency_figure(
    test: ImageDataset,
    indices: list[int],
    cells: dict[str, list[tuple[np.ndarray, int]]],
    smm: dict[str, list[float | None]],
    caption: str,
) -> np.ndarray:
    """Rows = models, columns = images; the first row shows the images and mask outlines.

    Under every overlay: the predicted class (with ``ok`` / ``x``) and that image's SMM.
    """
    size = int(test.images.shape[-1]) * SCALE
    label_w, head_h, cap_h, pad = 120, 40, 16, 6
    n_rows, n_cols = 1 + len(cells), len(indices)
    width = label_w + n_cols * (size + pad) + pad
    height = head_h + n_rows * (size + cap_h + pad) + 24
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font, small = _font(12), _font(11)
    draw.text((8, 6), caption, fill="black", font=font)

    def paste(rgb: np.ndarray, r: int, c: int, text: str) -> None:
        x, y = label_w + c * (size + pad), head_h + r * (size + cap_h + pad)
        big = Image.fromarray(rgb).resize((size, size), Image.NEAREST)
        img.paste(big, (x, y))
        draw.text((x, y + size + 1), text, fill="black", font=small)

    draw.text((8, head_h + size // 2), "image + mask", fill="black", font=font)
    for c, i in enumerate(indices):
        rgb = test.images[i].permute(1, 2, 0).numpy().copy()
        if test.masks is not None:
            rgb[_outline(test.masks[i].numpy())] = (255, 0, 255)  # magenta: rare in photos
        label = int(test.labels[i])
        paste(rgb, 0, c, f"{label} {test.class_names[label]}"[:20])
    for r, (name, row) in enumerate(cells.items(), start=1):
        draw.text(
            (8, head_h + r * (size + cap_h + pad) + size // 2 - 6), name, fill="black", font=font
        )
        for c, (rgb, pred) in enumerate(row):
            value = smm.get(name, [None] * n_cols)[c]
            mark = "ok" if pred == int(test.labels[indices[c]]) else "x"
            smm_text = "n/a" if value is None else f"{value:.2f}"
            paste(rgb, r, c, f"pred {pred} {mark}  SMM {smm_text}")
    return np.asarray(img)


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
