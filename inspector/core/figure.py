"""Paper-ready figures: the overlay enlarged to a chosen size with the mask outline and a colour
bar in the method's units, and the head/layer grid with its layer and head labels.

Pure numpy + PIL (text is drawn with PIL's bundled FreeType font); no Qt. The GUI's export
dialog, batch export and ``vit-inspector explain`` call these functions, so a figure made from
the window and one made from the command line are the same pixels.

Geometry conventions (tested in ``tests/core/test_figure.py``):

* enlargement is nearest neighbour with pixel-centre sampling, so every output pixel shows
  exactly one display pixel's colour (no invented values);
* the mask outline is the inner band of the enlarged mask: object pixels within ``width``
  4-connected steps of a background pixel (the image border is not an edge);
* the colour bar's strip runs from the scale's ``hi`` at the top row to ``lo`` at the bottom
  row, with the colour of each row that of the value it stands for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .colorscale import Scale, map_values, scale_of
from .postprocess import colorize

__all__ = [
    "DEFAULT_SIZE",
    "Figure",
    "enlarge",
    "format_value",
    "grid_figure",
    "map_figure",
    "outline_band",
    "overlay_figure",
]

DEFAULT_SIZE = 512  # px: the overlay's side in an exported figure
OUTLINE_RGB = (255, 255, 255)
BACKGROUND = (255, 255, 255)
TEXT_RGB = (0, 0, 0)


@dataclass
class Figure:
    """A rendered figure and where its parts lie.

    Attributes:
        rgb: ``(H, W, 3)`` uint8.
        image_box: ``(x0, y0, x1, y1)`` of the (enlarged) image or mosaic, exclusive ends.
        bar_box: ``(x0, y0, x1, y1)`` of the colour strip, or None without a colour bar.
        meta: what the figure shows, for the file's metadata (size, outline, scale...).
    """

    rgb: np.ndarray
    image_box: tuple[int, int, int, int]
    bar_box: tuple[int, int, int, int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def format_value(v: float) -> str:
    """Three significant digits (the colour bar's labels, as in the window's)."""
    if v == 0:
        return "0"
    return f"{v:.3g}"


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(6, int(size)))


def enlarge(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of ``(h, w, ...)`` to ``(height, width, ...)``: output pixel i
    takes input pixel ``floor((i + 0.5) * h / height)`` (pixel centres)."""
    h, w = a.shape[:2]
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return a[rows][:, cols]


def _erode(mask: np.ndarray) -> np.ndarray:
    """One 4-connected erosion step; outside the image counts as object (no edge there)."""
    p = np.pad(mask, 1, constant_values=True)
    return mask & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]


def outline_band(mask: np.ndarray, width: int) -> np.ndarray:
    """Object pixels within ``width`` steps of the background: ``mask & ~erode^width(mask)``."""
    m = np.asarray(mask, dtype=bool)
    inner = m
    for _ in range(max(1, int(width))):
        inner = _erode(inner)
    return m & ~inner


def _text_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int]:
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    return x1 - x0, y1 - y0


def _bar_labels(scale: Scale) -> list[tuple[float, str]]:
    """``(fraction from the top, text)`` for hi, middle and lo."""
    if scale.constant:
        return [(0.5, format_value(scale.lo))]
    mid = (scale.lo + scale.hi) / 2
    return [
        (0.0, format_value(scale.hi)),
        (0.5, format_value(mid)),
        (1.0, format_value(scale.lo)),
    ]


def _bar_strip(colormap: str, length: int, thickness: int, vertical: bool) -> np.ndarray:
    """``(length, thickness, 3)`` (vertical: ``hi`` colour on the top row) or
    ``(thickness, length, 3)`` (horizontal: ``lo`` on the left); entry k stands for the colour
    index ``k / (length - 1)`` counted from the ``lo`` end."""
    ramp = np.linspace(0.0, 1.0, length, dtype=np.float32)
    block = (
        np.repeat(ramp[::-1, None], thickness, 1)
        if vertical
        else np.repeat(ramp[None], thickness, 0)
    )
    return colorize(block, colormap)[..., :3]


def overlay_figure(
    rgb: np.ndarray,
    *,
    size: int = DEFAULT_SIZE,
    mask: np.ndarray | None = None,
    outline_width: int | None = None,
    scale: Scale | None = None,
    colormap: str = "viridis",
) -> Figure:
    """The overlay enlarged to ``size`` px (longest side), its mask outlined, a colour bar.

    Args:
        rgb: ``(S, S, 3)`` uint8, what the view shows (the pipeline's overlay).
        size: the enlarged image's longest side in pixels (``0``: the display's own size).
        mask: ``(S, S)`` bool in display geometry, or None (no outline).
        outline_width: the outline's width in output pixels (default ``max(1, size // 256)``).
        scale: the values the colormap's ends stand for (:func:`~inspector.core.colorscale.
            scale_of`); None: no colour bar.
        colormap: the colormap the overlay was drawn with (the bar must match it).
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    size = int(size) if size else max(h, w)
    if size < 1 or size > 8192:
        raise ValueError(f"the figure size must be 1..8192 px, got {size}")
    out_h, out_w = max(1, round(h * size / max(h, w))), max(1, round(w * size / max(h, w)))
    img = enlarge(rgb[..., :3], out_h, out_w).copy()
    meta: dict[str, Any] = {"size": [out_w, out_h], "resample": "nearest"}
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != (h, w):
            raise ValueError(f"the mask is {m.shape[1]}x{m.shape[0]}, the image {w}x{h}")
        width = int(outline_width) if outline_width else max(1, size // 256)
        band = outline_band(enlarge(m, out_h, out_w), width)
        img[band] = OUTLINE_RGB
        meta["outline"] = {"width": width, "rgb": list(OUTLINE_RGB)}
    if scale is None:
        meta["image_box"] = [0, 0, out_w, out_h]
        return Figure(img, (0, 0, out_w, out_h), None, meta)

    font_px = max(10, out_h // 28)
    font = _font(font_px)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    labels = _bar_labels(scale)
    units = scale.units or ""
    text_w = max(_text_size(probe, t, font)[0] for _, t in labels + [(0, units)])
    gap, bar_w, tick = max(6, out_w // 40), max(8, out_w // 24), max(3, font_px // 3)
    pad_v = font_px // 2 + 2  # room for the top and bottom labels' halves
    canvas_w = out_w + gap + bar_w + tick + 4 + text_w + gap
    canvas_h = out_h + 2 * pad_v
    canvas = Image.new("RGB", (canvas_w, canvas_h), BACKGROUND)
    canvas.paste(Image.fromarray(img), (0, pad_v))
    bx0, by0 = out_w + gap, pad_v
    strip = _bar_strip(colormap, out_h, bar_w, vertical=True)
    canvas.paste(Image.fromarray(np.ascontiguousarray(strip)), (bx0, by0))
    draw = ImageDraw.Draw(canvas)
    x_text = bx0 + bar_w + tick + 4
    for frac, text in labels:
        y = by0 + round(frac * (out_h - 1))
        draw.line([(bx0 + bar_w, y), (bx0 + bar_w + tick, y)], fill=TEXT_RGB, width=1)
        th = _text_size(draw, text, font)[1]
        draw.text((x_text, y - th // 2), text, fill=TEXT_RGB, font=font, anchor="lt")
    if units:
        draw.text((x_text, by0 + out_h // 4), units, fill=TEXT_RGB, font=font, anchor="lt")
    meta["colorbar"] = {
        "lo": scale.lo,
        "hi": scale.hi,
        "units": units,
        "colormap": colormap,
        "labels": [t for _, t in labels],
    }
    meta["image_box"] = [0, pad_v, out_w, pad_v + out_h]
    meta["bar_box"] = [bx0, by0, bx0 + bar_w, by0 + out_h]
    return Figure(
        np.asarray(canvas),
        (0, pad_v, out_w, pad_v + out_h),
        (bx0, by0, bx0 + bar_w, by0 + out_h),
        meta,
    )


def grid_figure(
    mosaic: np.ndarray,
    *,
    scale: int,
    column_centres: Sequence[float],
    column_labels: Sequence[str],
    row_centres: Sequence[float],
    row_labels: Sequence[str],
    colorbar: Scale | None = None,
    colormap: str = "viridis",
    note: str = "",
    colorbars: Sequence[tuple[str, Scale]] = (),
) -> Figure:
    """The head/layer mosaic enlarged ``scale`` times, with a column label over each column, a
    row label left of each row, an axis title each way and horizontal colour bars under it.

    Args:
        mosaic: ``(h, w, 3|4)`` uint8 (the explorer's mosaic).
        scale: integer enlargement (nearest neighbour).
        column_centres, row_centres: centres of the columns / rows in mosaic pixels.
        column_labels, row_labels: their labels (e.g. ``h0 … h3, fused, rollout`` and
            ``L0 … L3``).
        colorbar: one range shared by the cells (None: no bar; the cells' own ranges then
            belong in ``note``).
        note: a line under the figure (e.g. how the cells are scaled).
        colorbars: ``(title, scale)`` bars drawn one under another after ``colorbar``, each
            the mosaic's width under its title line (e.g. one for the
            attention columns and one for rollout, whose weights are another quantity).

    ``Figure.bar_box`` is the first bar's strip; ``meta["colorbars"]`` lists every bar with
    its ``box``.
    """
    if len(column_centres) != len(column_labels) or len(row_centres) != len(row_labels):
        raise ValueError("each column and row needs one centre and one label")
    scale = max(1, int(scale))
    m = np.asarray(mosaic)[..., :3]
    h, w = m.shape[0] * scale, m.shape[1] * scale
    img = np.repeat(np.repeat(m, scale, axis=0), scale, axis=1)
    font_px = int(np.clip(scale * 3, 11, 22))
    font = _font(font_px)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    row_w = max(_text_size(probe, t, font)[0] for t in list(row_labels) + ["layer"])
    col_h = max(_text_size(probe, t, font)[1] for t in list(column_labels) + ["head"])
    left, top = row_w + 10, 2 * col_h + 14
    bar_h = max(8, font_px // 2 + 4)
    bars = ([("", colorbar)] if colorbar is not None else []) + list(colorbars)
    bottom = 6 + sum(bar_h + font_px + 8 + ((font_px + 4) if t else 0) for t, _ in bars)
    bottom += (font_px + 6) if note else 0
    # The note and the bars' titles are single lines: the canvas widens to hold them.
    note_w = max([_text_size(probe, t, font)[0] for t in [note] + [t for t, _ in bars] if t] or [0])
    canvas = Image.new("RGB", (left + max(w, note_w) + 8, top + h + bottom), BACKGROUND)
    canvas.paste(Image.fromarray(np.ascontiguousarray(img)), (left, top))
    draw = ImageDraw.Draw(canvas)
    draw.text((left + w // 2, 2), "head", fill=TEXT_RGB, font=font, anchor="mt")
    # A label wider than its column's spacing is cut to its first letter ("fused" -> "F"), so
    # neighbours never overlap; the metadata keeps the full labels.
    spacing = min(np.diff(sorted(column_centres)), default=len(m[0])) * scale
    for c, text in zip(column_centres, column_labels, strict=True):
        if _text_size(probe, text, font)[0] > spacing - 4:
            text = text[:1].upper()
        draw.text((left + c * scale, top - 4), text, fill=TEXT_RGB, font=font, anchor="mb")
    draw.text((2, top - 4), "layer", fill=TEXT_RGB, font=font, anchor="lb")
    for r, text in zip(row_centres, row_labels, strict=True):
        draw.text((left - 6, top + r * scale), text, fill=TEXT_RGB, font=font, anchor="rm")
    meta: dict[str, Any] = {
        "rows": list(row_labels),
        "columns": list(column_labels),
        "scale": scale,
        "mosaic_box": [left, top, left + w, top + h],
    }
    bar_box = None
    y = top + h + 6
    records = []
    for title, bar in bars:
        if title:  # the bar's title on its own line: what quantity these values are
            draw.text((left, y), title, fill=TEXT_RGB, font=font, anchor="lt")
            y += font_px + 4
        strip = _bar_strip(colormap, w, bar_h, vertical=False)
        canvas.paste(Image.fromarray(np.ascontiguousarray(strip)), (left, y))
        box = (left, y, left + w, y + bar_h)
        bar_box = bar_box or box
        ty = y + bar_h + 2
        labels = _bar_labels(bar)
        if len(labels) == 3:
            hi, mid, lo = (t for _, t in labels)
            draw.text((left, ty), lo, fill=TEXT_RGB, font=font, anchor="lt")
            draw.text((left + w // 2, ty), mid, fill=TEXT_RGB, font=font, anchor="mt")
            draw.text((left + w, ty), hi, fill=TEXT_RGB, font=font, anchor="rt")
        else:
            draw.text((left + w // 2, ty), labels[0][1], fill=TEXT_RGB, font=font, anchor="mt")
        y = ty + font_px + 6
        records.append(
            {
                "title": title,
                "lo": bar.lo,
                "hi": bar.hi,
                "units": bar.units,
                "colormap": colormap,
                "box": list(box),
                "labels": [t for _, t in labels],
            }
        )
    if records:
        meta["colorbar"] = {k: records[0][k] for k in ("lo", "hi", "units", "colormap")}
        meta["colorbars"] = records
    if note:
        draw.text((left, y), note, fill=TEXT_RGB, font=font, anchor="lt")
        meta["note"] = note
    return Figure(np.asarray(canvas), (left, top, left + w, top + h), bar_box, meta)


def map_figure(
    overlay_rgb: np.ndarray,
    full: np.ndarray,
    raw_grid: np.ndarray,
    *,
    smoothing: str = "none",
    colormap: str = "viridis",
    mask: np.ndarray | None = None,
    size: int = DEFAULT_SIZE,
    colorbar: bool = True,
    units: str = "",
) -> Figure:
    """A pipeline result as a figure: :func:`overlay_figure` with the colour bar's ends at the
    map's own minimum and maximum in the method's units (what the view's colours stand for).

    Args:
        overlay_rgb: ``(S, S, 3)`` uint8, the pipeline's overlay.
        full: ``(S, S)`` the pipeline's map in [0, 1] (all zero: the bar shows one value).
        raw_grid: ``(rows, cols)`` the method's unnormalised patch-grid map.
        smoothing: the pipeline's smoothing (the bar's values are those of the smoothed map).
        mask: ``(S, S)`` bool mask to outline, or None.
    """
    scale = None
    if colorbar:
        s = overlay_rgb.shape[0]
        values = map_values(raw_grid, s, s // raw_grid.shape[0], smoothing)  # (S, S)
        scale = scale_of([values], units)
        if not np.any(np.asarray(full)):  # the pipeline drew one colour: say so
            scale = Scale(scale.lo, scale.lo, units)
    return overlay_figure(overlay_rgb, size=size, mask=mask, scale=scale, colormap=colormap)
