"""Reading images and masks from disk into plain numpy arrays (PIL only, no Qt).

Every reader returns the same canonical forms whatever the file holds:

* :func:`read_image` -> ``(H, W, 3)`` uint8 RGB.
* :func:`read_mask` -> ``(H, W)`` bool, where any non-zero pixel is "object".

Conversions done by :func:`read_image`:

* RGBA / LA / palette-with-transparency images are **composited over white** (alpha-weighted:
  ``out = a * rgb + (1 - a) * 255``), so a transparent background reads as white, the way
  image viewers show it, instead of whatever colour happens to sit under alpha 0.
* Greyscale (``L``, ``1``) is replicated to three channels; palette (``P``) is expanded.
* 16-bit and 32-bit integer greyscale (``I;16``, ``I;16B``, ``I``) is scaled with
  ``round(v * 255 / 65535)`` (values clipped to [0, 65535]); float (``F``) images are assumed to
  hold [0, 1] and scaled by 255.
* CMYK / YCbCr / LAB go through PIL's own conversion to RGB.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageReadError",
    "read_image",
    "read_mask",
    "is_image_file",
    "natural_key",
]


def natural_key(name: str | os.PathLike) -> tuple:
    """Sort key that orders numbers by value: ``val_23`` before ``val_1054`` (a plain string
    sort puts ``val_1054`` first). Case-insensitive for the text between numbers."""
    text = os.path.basename(os.fspath(name))
    return tuple(
        (0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", text)
    )


#: File suffixes (lower case) that the readers accept.
IMAGE_SUFFIXES: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".webp",
    ".tif",
    ".tiff",
    ".gif",
    ".ppm",
    ".pgm",
)


class ImageReadError(ValueError):
    """An image or mask file is missing, has an unsupported format, or cannot be decoded."""


def is_image_file(path: str | os.PathLike) -> bool:
    """True when ``path`` has one of :data:`IMAGE_SUFFIXES` (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _open(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode ``path``, turning every failure into :class:`ImageReadError`."""
    p = Path(path)
    if not p.exists():
        raise ImageReadError(f"image file not found: {p}")
    if not p.is_file():
        raise ImageReadError(f"not a file: {p}")
    if p.suffix.lower() not in IMAGE_SUFFIXES:
        raise ImageReadError(
            f"unsupported image type {p.suffix!r} for {p}; supported: {', '.join(IMAGE_SUFFIXES)}"
        )
    try:
        with warnings.catch_warnings():
            # PIL only warns between MAX_IMAGE_PIXELS and twice that; refuse both alike
            # before any pixel is decoded (a 27 KB PNG can claim 15000 x 15000 pixels).
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                im.load()  # decode now so truncated files fail here, not later
                return im.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        limit = (Image.MAX_IMAGE_PIXELS or 0) / 1e6
        raise ImageReadError(
            f"refused {p}: it claims more pixels than the {limit:.0f}-megapixel limit (a "
            f"possible decompression bomb)"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageReadError(f"cannot identify image file {p} (not an image or corrupt)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        # PIL raises OSError for truncated data, SyntaxError for some broken headers.
        raise ImageReadError(f"cannot decode image file {p}: {exc}") from exc


def _composite_over_white(rgba: np.ndarray) -> np.ndarray:
    """``(H, W, 4)`` uint8 -> ``(H, W, 3)`` uint8, ``out = a*rgb + (1-a)*255`` with a in [0, 1]."""
    rgb = rgba[..., :3].astype(np.float32)
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    out = rgb * a + 255.0 * (1.0 - a)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _to_rgb_array(im: Image.Image) -> np.ndarray:
    """Any PIL image -> ``(H, W, 3)`` uint8 RGB array (see the module docstring for rules)."""
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im, dtype=np.uint8).copy()
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit greyscale: PIL's own convert("L") clips instead of scaling, so scale by hand.
        v = np.asarray(im).astype(np.float64)
        grey = np.rint(np.clip(v, 0, 65535) * (255.0 / 65535.0)).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        v = np.asarray(im, dtype=np.float64)
        grey = np.rint(np.clip(np.nan_to_num(v), 0.0, 1.0) * 255.0).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
        if mode == "RGB":
            return np.asarray(im, dtype=np.uint8).copy()
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return _composite_over_white(np.asarray(im.convert("RGBA"), dtype=np.uint8))
    if mode in ("L", "1"):
        grey = np.asarray(im.convert("L"), dtype=np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB.

    Args:
        path: a PNG, JPEG, BMP, WebP, TIFF, GIF or PPM/PGM file.

    Returns:
        ``(H, W, 3)`` uint8 RGB array (alpha composited over white, 16-bit scaled to 8-bit).

    Raises:
        ImageReadError: the file is missing, has an unsupported suffix, or cannot be decoded.
    """
    im = _open(path)
    try:
        return _to_rgb_array(im)
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"cannot convert image {path} (mode {im.mode}) to RGB: {exc}") from exc


def read_mask(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a binary object mask: any non-zero pixel (in any channel) is object.

    Alpha is ignored for RGBA masks (only colour channels count), so a mask painted as
    opaque black background with coloured objects reads as expected.

    Args:
        path: an image file (any suffix in :data:`IMAGE_SUFFIXES`).
        size: optional ``(H, W)``; the mask is resized with nearest neighbour (no new values).

    Returns:
        ``(H, W)`` bool array.

    Raises:
        ImageReadError: the file is missing, unsupported or broken, or ``size`` is invalid.
    """
    im = _open(path)
    arr = np.asarray(im)
    if im.mode in ("RGBA", "LA", "PA"):
        arr = arr[..., :-1]
    if im.mode == "P":
        # Palette index 0 is not necessarily black: look at the colours themselves.
        arr = np.asarray(im.convert("RGB"))
    mask = arr != 0
    if mask.ndim == 3:
        mask = mask.any(axis=2)
    if size is not None:
        if len(size) != 2 or int(size[0]) <= 0 or int(size[1]) <= 0:
            raise ImageReadError(f"mask size must be (H, W) with positive values, got {size!r}")
        h, w = int(size[0]), int(size[1])
        if mask.shape != (h, w):
            small = Image.fromarray(mask.astype(np.uint8) * 255)
            mask = np.asarray(small.resize((w, h), Image.Resampling.NEAREST)) > 0
    return np.ascontiguousarray(mask, dtype=bool)
