"""Exporting what the window shows: the overlay PNG with every setting in its metadata, and the
raw map as ``.npy``. Files are written atomically by :mod:`inspector.core.export` and never
replace an existing file unless the caller says so (the window asks the user first).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from inspector.core import export as core_export

from .controls import ViewSettings

__all__ = ["ExportError", "export_overlay", "suggested_name"]


class ExportError(Exception):
    """Nothing to export, a target file exists, or the file cannot be written."""


def suggested_name(image_path: Path | None, settings: ViewSettings) -> str:
    """A file name carrying the method and its settings, e.g.
    ``cat_rollout_max_d0.90.png`` or ``cat_attention_L3_h2_q12.png``."""
    m = settings.map
    parts = [image_path.stem if image_path else "overlay", m.method]
    # Only the settings the method reads (the registry says which) name the file.
    if m.uses("fusion") and not (m.uses("head") and m.head is not None):
        parts.append(m.fusion)
    if m.uses("discard_ratio"):
        parts.append(f"d{m.discard_ratio:.2f}")
    if m.uses("layer"):
        parts.append(f"L{m.layer}")
    if m.uses("head") and m.head is not None:
        parts.append(f"h{m.head}")
    if m.uses("aggregation"):
        parts.append(m.aggregation)
    if m.uses("query") and m.query != 0:
        parts.append(f"q{m.query}")
    if m.uses("class_index") and m.class_index is not None:
        parts.append(f"c{m.class_index}")
    if m.uses("target") and m.target != "logit":
        parts.append(m.target)
    if m.uses("start_layer") and m.start_layer:
        parts.append(f"s{m.start_layer}")
    if settings.smoothing != "none":
        parts.append(settings.smoothing)
    return "_".join(parts) + ".png"


def export_overlay(
    path: Path,
    rgb: np.ndarray,
    full_map: np.ndarray,
    metadata: Mapping[str, Any],
    *,
    overwrite: bool = False,
    scale: int = 1,
) -> list[Path]:
    """Write ``path`` (PNG of ``rgb``, ``metadata`` as JSON in an iTXt chunk) and
    ``path.with_suffix('.npy')`` (``full_map`` float32, image resolution).

    Args:
        path: the PNG's path.
        rgb: ``(S, S, 3)`` uint8, what the view shows.
        full_map: ``(S, S)`` float32 map in [0, 1].
        metadata: settings and provenance recorded in the PNG.
        overwrite: replace existing files (otherwise nothing is written if one exists).
        scale: integer enlargement of the PNG (nearest neighbour, so pixels stay exact).

    Raises:
        ExportError: a file exists (and ``overwrite`` is False) or cannot be written.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_suffix(".png")
    npy = path.with_suffix(".npy")
    try:
        core_export.check_writable([path, npy], overwrite=overwrite)
    except FileExistsError:
        existing = [p.name for p in (path, npy) if p.exists() or p.is_symlink()]
        raise ExportError(f"{' and '.join(existing)} already exist(s) in {path.parent}") from None
    except OSError as exc:  # read-only or full disk, a folder in the way
        raise ExportError(str(exc)) from None
    if not path.parent.is_dir():
        raise ExportError(f"Folder {path.parent} does not exist")
    scale = max(1, int(scale))
    if scale > 1:
        h, w = rgb.shape[:2]
        rgb = np.asarray(
            Image.fromarray(rgb).resize((w * scale, h * scale), Image.Resampling.NEAREST)
        )
    meta = {**dict(metadata), "scale": scale, "npy": npy.name}
    try:
        core_export.save_png(path, np.ascontiguousarray(rgb), meta, overwrite=overwrite)
        core_export.save_npy(npy, np.asarray(full_map, dtype=np.float32), overwrite=overwrite)
    except FileExistsError as exc:
        raise ExportError(str(exc)) from None
    except OSError as exc:
        raise ExportError(f"Cannot write {path.name}: {exc.strerror or exc}") from None
    return [path, npy]
