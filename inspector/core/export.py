"""Writing what the user sees and the raw numbers: PNG with settings metadata, .npy, JSON.

Every writer is atomic and refuses to replace an existing file unless ``overwrite=True``.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .atomic import atomic_write_bytes, check_folder_writable

METADATA_KEY = "vit-inspector"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite(data: Any) -> Any:
    """NaN and infinities are not JSON: they become ``null`` (undefined)."""
    if isinstance(data, float) and not np.isfinite(data):
        return None
    if isinstance(data, Mapping):
        return {str(k): _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def to_json(data: Any) -> str:
    return json.dumps(_finite(data), indent=1, default=_json_default, allow_nan=False)


def png_bytes(rgb: np.ndarray, metadata: Mapping[str, Any] | None = None) -> bytes:
    """Encode ``(H, W, 3|4)`` uint8 as PNG; ``metadata`` goes into an iTXt chunk as JSON under
    the key ``vit-inspector`` (so a figure records every setting that made it)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ValueError(f"expected (H, W, 3|4) uint8, got {rgb.shape} {rgb.dtype}")
    info = PngInfo()
    if metadata:
        info.add_itxt(METADATA_KEY, to_json(dict(metadata)))
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def save_png(
    path: str | os.PathLike,
    rgb: np.ndarray,
    metadata: Mapping[str, Any] | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    atomic_write_bytes(path, png_bytes(rgb, metadata), overwrite=overwrite)
    return Path(path)


def read_png_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The settings stored by :func:`save_png` (empty when the PNG has none)."""
    with Image.open(path) as im:
        text = im.text.get(METADATA_KEY) if hasattr(im, "text") else None
    return json.loads(text) if text else {}


def save_npy(path: str | os.PathLike, array: np.ndarray, *, overwrite: bool = False) -> Path:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array))
    atomic_write_bytes(path, buf.getvalue(), overwrite=overwrite)
    return Path(path)


def save_json(path: str | os.PathLike, data: Any, *, overwrite: bool = False) -> Path:
    atomic_write_bytes(path, (to_json(data) + "\n").encode(), overwrite=overwrite)
    return Path(path)


def save_text(path: str | os.PathLike, text: str, *, overwrite: bool = False) -> Path:
    atomic_write_bytes(path, text.encode(), overwrite=overwrite)
    return Path(path)


def check_writable(paths: list[Path], *, overwrite: bool, needed_bytes: int = 0) -> None:
    """Refuse before any work when a target exists or its folder cannot take the files.

    A dangling symbolic link counts as existing (the atomic writer refuses it too; checking
    only ``exists()`` let the first files of a batch be written before the refusal). The
    nearest existing folder of each target is probed for writing and free space, so a
    read-only or full disk fails here, not after the work.

    Raises:
        FileExistsError: a target exists and ``overwrite`` is False.
        WriteError: a folder cannot be written or lacks ``needed_bytes`` of free space.
    """
    folders = {}
    for p in paths:
        folder = _nearest_existing(Path(p).parent)
        folders[str(folder)] = folder
        if Path(p).is_dir():
            raise IsADirectoryError(f"{p} is a folder; it is where a file must be written")
    if not overwrite:
        existing = [str(p) for p in paths if p.exists() or p.is_symlink()]
        if existing:
            more = f" and {len(existing) - 3} more" if len(existing) > 3 else ""
            raise FileExistsError(
                f"{', '.join(existing[:3])}{more} exist(s); pass --overwrite to replace"
            )
    for folder in folders.values():
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder} is a file, not a folder")
        check_folder_writable(folder, needed_bytes=needed_bytes)


def _nearest_existing(folder: Path) -> Path:
    """``folder`` or its closest ancestor that exists (what ``mkdir(parents=True)`` writes in)."""
    folder = Path(os.path.abspath(folder))
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder


# -- a map's files: the figure, the normalised and the raw map, the metadata ---------------------
MASK_SOURCES = ("file", "painted", "box", "dataset", "mask r-cnn", "array")


def mask_record(
    source: str | None, mask: Any = None, path: str | os.PathLike | None = None
) -> dict[str, Any] | None:
    """What a file records about the active mask: where it came from (``file`` with its
    ``path``, ``painted``, ``box``, ``dataset`` with its annotation file, ``mask r-cnn``) and
    its object pixel count in display geometry; None when no mask is active."""
    if mask is None and source is None:
        return None
    if source not in MASK_SOURCES:
        raise ValueError(f"unknown mask source {source!r}; one of {', '.join(MASK_SOURCES)}")
    record: dict[str, Any] = {"source": source}
    if path is not None:
        record["path"] = str(path)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        record["pixels"] = int(m.sum())
        record["shape"] = list(m.shape)
    return record


def map_file_paths(png: str | os.PathLike) -> dict[str, Path]:
    """The four files of one exported map, named after the PNG: ``x.png`` (figure), ``x.npy``
    (the map in [0, 1] at image resolution), ``x_raw.npy`` (the method's unnormalised
    patch-grid values) and ``x.json`` (the metadata)."""
    png = Path(png)
    if png.suffix.lower() != ".png":
        png = png.with_name(png.name + ".png")
    return {
        "png": png,
        "npy": png.with_suffix(".npy"),
        "raw": png.with_name(png.stem + "_raw.npy"),
        "json": png.with_suffix(".json"),
    }


def ensure_folder(folder: str | os.PathLike, *, create: bool) -> bool:
    """Make sure ``folder`` exists; True when it was created here.

    Raises:
        FileNotFoundError: it is missing and ``create`` is False (one line naming it).
        NotADirectoryError: a file is in the way.
    """
    folder = Path(folder)
    if folder.is_dir():
        return False
    if folder.exists():
        raise NotADirectoryError(f"{folder} is a file, not a folder")
    if not create:
        raise FileNotFoundError(f"folder {folder} does not exist")
    folder.mkdir(parents=True, exist_ok=True)
    return True


def write_map_files(
    png: str | os.PathLike,
    figure_rgb: np.ndarray,
    normalised: np.ndarray,
    raw: np.ndarray,
    metadata: Mapping[str, Any],
    *,
    overwrite: bool = False,
) -> list[Path]:
    """Write the four files of :func:`map_file_paths` atomically, after checking that none
    exists (unless ``overwrite``) and that the folder takes them, so a refusal writes nothing.

    Args:
        png: the figure's path (the others are named after it).
        figure_rgb: ``(H, W, 3)`` uint8, the figure (:mod:`inspector.core.figure`).
        normalised: ``(S, S)`` the map in [0, 1], saved float32.
        raw: ``(rows, cols)`` the method's values as the pipeline computed them (float32),
            saved unchanged: no scaling, no upsampling.
        metadata: settings, provenance, mask source; stored in the PNG and the JSON.

    Returns:
        ``[png, npy, raw npy, json]``.
    """
    paths = map_file_paths(png)
    check_writable(list(paths.values()), overwrite=overwrite)
    raw = np.asarray(raw)
    meta = {
        **dict(metadata),
        "files": {
            "figure": paths["png"].name,
            "normalised": {
                "file": paths["npy"].name,
                "shape": list(np.shape(normalised)),
                "what": "the map at the model's input resolution, min-max scaled to [0, 1]",
            },
            "raw": {
                "file": paths["raw"].name,
                "shape": list(raw.shape),
                "dtype": str(raw.dtype),
                "what": "the method's patch-grid values, unnormalised (the method's units)",
            },
        },
    }
    save_png(paths["png"], np.ascontiguousarray(figure_rgb), meta, overwrite=overwrite)
    save_npy(paths["npy"], np.asarray(normalised, dtype=np.float32), overwrite=overwrite)
    save_npy(paths["raw"], raw, overwrite=overwrite)
    save_json(paths["json"], meta, overwrite=overwrite)
    return list(paths.values())
