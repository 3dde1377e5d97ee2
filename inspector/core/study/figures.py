"""The ablation study's figures, drawn with PIL: confusion matrices, training curves and the
saliency grid (rows = models, columns = images).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..checkpoint import load_checkpoint
from ..data.types import ImageDataset
from ..explain import from_checkpoint, prepare
from ..pipeline import ExplainSettings, explain_one
from ..train import LAST
from .spec import StudySpec, run_dir

BLUE = np.array([8, 48, 107], dtype=np.float64)


WHITE = np.array([255, 255, 255], dtype=np.float64)

SCALE = 2  # figure cells are the 64 px images drawn at 128 px


def _font(size: int = 12) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the bitmap font
        return ImageFont.load_default()


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
        drawing = ExplainSettings(map=settings, smoothing=spec.smoothing, colormap="jet")
        row = []
        for i in indices:
            image = prepare(test.images[i].permute(1, 2, 0).numpy(), loaded)
            result = explain_one(loaded, image, drawing)
            row.append((result.overlay, result.capture.predicted_class))
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
