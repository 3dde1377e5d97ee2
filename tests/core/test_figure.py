"""Paper-ready figures (core/figure.py) and the map files (core/export.write_map_files), checked
pixel by pixel against hand-built references: nearest enlargement by pixel centres, the outline
on the mask's boundary, the colour bar's colours and values, the raw map written unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from inspector.core.colorscale import Scale
from inspector.core.export import map_file_paths, read_png_metadata, write_map_files
from inspector.core.figure import enlarge, grid_figure, map_figure, outline_band, overlay_figure
from inspector.core.postprocess import colorize, full_map, overlay


def _scene(s: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    raw = rng.random((8, 8)).astype(np.float32) * 0.02 + 0.001  # attention-like values
    display = rng.integers(0, 256, (s, s, 3), dtype=np.uint8)
    full = full_map(raw / raw.max(), s, s // 8)
    rgb = overlay(display, full, cmap="viridis", opacity=0.5)
    mask = np.zeros((s, s), dtype=bool)
    mask[10:40, 20:50] = True
    return raw, full, rgb, mask


def test_enlarge_samples_pixel_centres():
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    out = enlarge(a, 6, 8)
    np.testing.assert_array_equal(out, np.repeat(np.repeat(a, 2, 0), 2, 1))
    odd = enlarge(a, 7, 4)  # 7 / 3: rows 0,0,1,1,1,2,2 by centres (i + .5) * 3 / 7
    np.testing.assert_array_equal(odd[:, 0], a[[0, 0, 1, 1, 1, 2, 2], 0])


def test_overlay_figure_size_and_outline_on_the_mask_boundary():
    raw, full, rgb, mask = _scene()
    fig = overlay_figure(rgb, size=512, mask=mask, outline_width=2)
    assert fig.rgb.shape == (512, 512, 3) and fig.meta["size"] == [512, 512]
    base = np.repeat(np.repeat(rgb, 8, 0), 8, 1)
    changed = np.any(fig.rgb != base, axis=2)
    # Reference boundary, by hand: the box [10:40, 20:50] at 8x is rows 80..319, cols 160..399;
    # its inner band of width 2 is the box minus the box shrunk by 2 on each side.
    box = np.zeros((512, 512), bool)
    box[80:320, 160:400] = True
    inner = np.zeros_like(box)
    inner[82:318, 162:398] = True
    band = box & ~inner
    assert not changed[~band].any(), "outline pixels outside the mask boundary"
    assert (fig.rgb[band] == 255).all(), "the whole boundary is outlined"
    np.testing.assert_array_equal(outline_band(enlarge(mask, 512, 512), 2), band)


def test_outline_ignores_the_image_border():
    m = np.zeros((8, 8), bool)
    m[:, :4] = True  # touches the top, bottom and left borders
    band = outline_band(m, 1)
    assert band[:, 3].all() and not band[:, :3].any()


def test_colour_bar_present_with_the_maps_real_values():
    raw, full, rgb, _ = _scene()
    fig = map_figure(rgb, full, raw, colormap="viridis", size=256)
    x0, y0, x1, y1 = fig.bar_box
    assert fig.rgb.shape[1] > 256 and y1 - y0 == 256
    # Reference: the map at image resolution in float64 (torch bilinear, half-pixel centres).
    up = torch.nn.functional.interpolate(
        torch.from_numpy(raw.astype(np.float64))[None, None],
        size=(64, 64),
        mode="bilinear",
        align_corners=False,
    )[0, 0].numpy()
    bar = fig.meta["colorbar"]
    assert bar["lo"] == pytest.approx(up.min(), rel=1e-5)
    assert bar["hi"] == pytest.approx(up.max(), rel=1e-5)
    # Each strip row has the colour of the value it stands for: hi on top, lo at the bottom.
    ramp = colorize(np.linspace(1, 0, 256, dtype=np.float32)[:, None], "viridis")[:, 0, :3]
    np.testing.assert_array_equal(fig.rgb[y0:y1, x0 + (x1 - x0) // 2], ramp)
    # Labels: dark ink right of the strip near its top, middle and bottom.
    right = fig.rgb[:, x1 + 2 :]
    for y in (y0, (y0 + y1) // 2, y1 - 1):
        assert (right[max(0, y - 6) : y + 6] < 100).any()
    # And the overlay's colours follow the same scale: colour index = (value - lo) / (hi - lo).
    np.testing.assert_allclose(full, (up - up.min()) / (up.max() - up.min()), atol=2e-6)
    ix0, iy0, ix1, iy1 = fig.image_box
    np.testing.assert_array_equal(fig.rgb[iy0:iy1, ix0:ix1][::4, ::4], rgb)


def test_an_all_zero_map_gets_a_one_value_bar():
    raw = np.zeros((8, 8), np.float32)
    full = np.zeros((64, 64), np.float32)
    rgb = np.zeros((64, 64, 3), np.uint8)
    fig = map_figure(rgb, full, raw, size=64)
    assert fig.meta["colorbar"]["labels"] == ["0"]


def test_grid_figure_labels_every_row_and_column():
    mosaic = np.full((20, 44, 3), 40, np.uint8)
    cols = [5.0, 16.0, 27.0, 38.0]
    rows = [4.5, 15.5]
    fig = grid_figure(
        mosaic,
        scale=4,
        column_centres=cols,
        column_labels=["h0", "h1", "fused", "rollout"],
        row_centres=rows,
        row_labels=["L0", "L1"],
        colorbar=Scale(0.0, 0.5),
    )
    x0, y0, x1, y1 = fig.image_box
    np.testing.assert_array_equal(fig.rgb[y0:y1:4, x0:x1:4], mosaic)
    for c in cols:
        cx = x0 + int(4 * c)
        assert (fig.rgb[:y0, cx - 4 : cx + 4] < 100).any()
    for r in rows:
        cy = y0 + int(4 * r)
        assert (fig.rgb[cy - 3 : cy + 3, :x0] < 100).any()
    bx0, by0, bx1, by1 = fig.bar_box
    assert bx1 - bx0 == x1 - x0
    np.testing.assert_array_equal(
        fig.rgb[by0, bx0:bx1],
        colorize(np.linspace(0, 1, bx1 - bx0, dtype=np.float32)[None], "viridis")[0, :, :3],
    )


def test_write_map_files_raw_is_unchanged_and_nothing_is_overwritten(tmp_path):
    raw, full, rgb, mask = _scene()
    raw = raw - 0.01  # negative values too: the raw file must not be rescaled
    fig = map_figure(rgb, full, raw, mask=mask)
    meta = {"settings": {"method": "attention", "layer": 1, "head": 0}, "mask": None}
    written = write_map_files(tmp_path / "x.png", fig.rgb, full, raw, meta)
    paths = map_file_paths(tmp_path / "x.png")
    assert written == list(paths.values())
    np.testing.assert_array_equal(np.load(paths["raw"]), raw)
    np.testing.assert_array_equal(np.load(paths["npy"]), full)
    record = json.loads(paths["json"].read_text())
    assert record == read_png_metadata(paths["png"])
    assert record["files"]["raw"]["shape"] == [8, 8]
    assert Image.open(paths["png"]).size == (fig.rgb.shape[1], fig.rgb.shape[0])
    before = {p: p.read_bytes() for p in written}
    paths["png"].unlink()  # one missing, three existing: still nothing written
    with pytest.raises(FileExistsError):
        write_map_files(tmp_path / "x.png", fig.rgb, full, raw, meta)
    assert not paths["png"].exists()
    assert all(p.read_bytes() == b for p, b in before.items() if p != paths["png"])
