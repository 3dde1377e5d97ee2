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
