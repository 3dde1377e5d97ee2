"""The sanity check's files (``sanity.json``, ``sanity.csv``, ``sanity.png``), written the same
way by ``vit-inspector sanity`` and by the window's Sanity Check dialog."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .export import check_writable, save_json, save_png, save_text
from .sanity import SanityResult, sanity_figure

__all__ = ["OUTPUTS", "check_sanity_outputs", "sanity_csv", "sanity_record", "save_sanity"]

OUTPUTS = ("sanity.json", "sanity.csv", "sanity.png")
PROTOCOL = (
    "cascading randomisation (Adebayo et al. 2018), top layer first, cumulative; Spearman "
    "rank correlation and SSIM (Wang et al. 2004) of each step's image-resolution map with "
    "the trained model's"
)


def check_sanity_outputs(out_dir: str | os.PathLike, *, overwrite: bool) -> None:
    """Refuse before the (long) cascade when a file is in the way or the folder is not
    writable: ``FileExistsError`` / ``OSError`` with a one-line message."""
    check_writable([Path(out_dir) / n for n in OUTPUTS], overwrite=overwrite)


def sanity_record(
    result: SanityResult, checkpoint: str | os.PathLike, images: Sequence[str | os.PathLike]
) -> dict[str, Any]:
    """The JSON record of a finished cascade: settings, per-layer means and every score."""
    return {
        "checkpoint": str(checkpoint),
        "images": [str(p) for p in images],
        "target_classes": result.target_classes,
        "settings": result.settings,
        "layers": result.layers,
        "per_layer": result.per_layer(),
        "records": result.records,
        "stopped": result.stopped,
        "protocol": PROTOCOL,
    }


def sanity_csv(records: list[dict[str, Any]]) -> str:
    """One row per (step, image): step, layer, image, name, spearman (empty: undefined), ssim."""
    buf = io.StringIO()
    columns = ["step", "layer", "image", "name", "spearman", "ssim"]
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for r in records:
        writer.writerow({k: ("" if r[k] is None else r[k]) for k in columns})
    return buf.getvalue()


def save_sanity(
    out_dir: str | os.PathLike,
    result: SanityResult,
    record: dict[str, Any],
    displays: Sequence[np.ndarray],
    *,
    cmap: str = "jet",
    overwrite: bool = False,
) -> list[Path]:
    """Write the three files into ``out_dir`` (created), each atomically; returns them.

    ``displays`` are the images as the model sees them, ``(S, S, 3)`` uint8, for the figure.
    """
    out = Path(out_dir)
    check_sanity_outputs(out, overwrite=overwrite)
    figure = sanity_figure(result, list(displays), cmap=cmap)
    out.mkdir(parents=True, exist_ok=True)
    return [
        save_json(out / OUTPUTS[0], record, overwrite=overwrite),
        save_text(out / OUTPUTS[1], sanity_csv(result.records), overwrite=overwrite),
        save_png(out / OUTPUTS[2], figure, record["settings"], overwrite=overwrite),
    ]
