"""The compare view inside the main window, the head/layer grid PNG and the batch export.

References are computed here from a second, independently opened model with the core's own
:func:`~inspector.core.saliency.compute_map` and :mod:`~inspector.core.postprocess` steps;
files are read back from disk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("pytestqt")

from gui_helpers import CLASSES, loaded  # noqa: E402
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402

from inspector.core.checkpoint import Checkpoint, save_checkpoint  # noqa: E402
from inspector.core.config import Preprocess, preset  # noqa: E402
from inspector.core.explain import (  # noqa: E402
    capture_image,
    load_image,
    open_model,
)
from inspector.core.export import read_png_metadata  # noqa: E402
from inspector.core.imageio import read_mask  # noqa: E402
from inspector.core.metrics import smm  # noqa: E402
from inspector.core.model import VisionTransformer  # noqa: E402
from inspector.core.postprocess import normalise, overlay, upsample  # noqa: E402
from inspector.core.preprocess import align_mask  # noqa: E402
from inspector.core.saliency import compute_map  # noqa: E402
from inspector.gui.batch_export import BatchExport, plan_batch  # noqa: E402
from inspector.gui.export_dialog import ExportError  # noqa: E402


@pytest.fixture(scope="module")
def second_ckpt(tmp_path_factory) -> Path:
    """A second tiny model (another seed, learned positions): an 'ablation' to compare with."""
    torch.manual_seed(7)
    model = VisionTransformer(preset("baseline").replace(pos_encoding="learned"))
    with torch.no_grad():
        for blk in model.blocks:
            blk.attn.qkv.weight.mul_(8.0)
    ckpt = Checkpoint.from_model(model, class_names=CLASSES, preprocess=Preprocess())
    return save_checkpoint(tmp_path_factory.mktemp("second") / "learned.pt", ckpt)


def _ref_map(path: Path, image: Path, settings) -> tuple[np.ndarray, np.ndarray]:
    """(display image, map in [0, 1]) from a freshly opened model."""
    model = open_model(path)
    prepared = load_image(image, model)
    cap = capture_image(model, prepared)
    grid = compute_map(cap, settings=settings.map)
    return prepared.display, normalise(upsample(grid, prepared.display.shape[:2]))


def _drop_on(widget, paths) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    drop = QDropEvent(
        QPointF(5, 5),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    widget.dropEvent(drop)


def _check_cells(window, paths) -> None:
    s = window.current_settings()
    results = window.panels["compare"].results()
    assert [r.path for r in results] == [str(p) for p in paths]
    for res, path in zip(results, paths, strict=True):
        assert res.error == ""
        _, ref = _ref_map(path, window.image_path, s)
        np.testing.assert_allclose(res.map01, ref, atol=1e-6)
        assert res.smm == pytest.approx(smm(ref, window.mask, s.smm_threshold), abs=1e-6)


def test_compare_follows_the_main_view_without_recapturing(qtbot, window, files, second_ckpt):
    loaded(qtbot, window, files)
    compare = window.panels["compare"]
    paths = [files["ckpt"], second_ckpt]
    with qtbot.waitSignal(compare.updated, timeout=30_000):
        _drop_on(compare, paths)  # checkpoints dropped on the compare tab
    assert compare.wait_idle(30_000)
    assert window.central_tabs.currentWidget() is compare and compare.isVisible()
    _check_cells(window, paths)
    captures = [e.captures_made for e in compare._entries]
    assert captures == [1, 1]
    # The main window's discard slider drives the compare cells (debounced), from the cache.
    window.controls.fusion.setCurrentText("mean")
    with qtbot.waitSignal(compare.updated, timeout=30_000):
        window.controls.discard.setValue(35)
    assert compare.wait_idle(30_000) and window.wait_until_idle(5000)
    assert compare._settings.discard_ratio == pytest.approx(0.35)
    _check_cells(window, paths)
    assert [e.captures_made for e in compare._entries] == captures
    # The SMM threshold and the method follow too.
    with qtbot.waitSignal(compare.updated, timeout=30_000):
        window.controls.smm_threshold.setValue(0.5)
    assert compare.wait_idle(30_000)
    _check_cells(window, paths)
    assert [e.captures_made for e in compare._entries] == captures


def test_dropping_two_checkpoints_on_the_window_compares_them(qtbot, window, files, second_ckpt):
    with qtbot.waitSignal(window.modelLoaded, timeout=20_000):
        _drop_on(window, [files["ckpt"], second_ckpt])
    assert window.loaded.path == files["ckpt"]  # the first one is inspected
    assert window.panels["compare"].models() == [str(files["ckpt"]), str(second_ckpt)]


def test_the_empty_compare_tab_offers_the_study_models_and_a_file_dialog(
    qtbot, window, files, second_ckpt, monkeypatch
):
    from PySide6.QtWidgets import QFileDialog

    from inspector.paths import study_checkpoints

    loaded(qtbot, window, files)
    panel = window.panels["compare"]
    window.central_tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: panel.empty_state.isVisible(), timeout=5000)
    assert panel.header.text().startswith("no models yet")
    # Centred in the tab, not a line at its top-left.
    label = panel.empty_label
    centre = label.mapTo(panel, label.rect().center())
    assert abs(centre.x() - panel.width() / 2) < 0.1 * panel.width()
    assert centre.y() > 0.2 * panel.height()

    chosen = [str(files["ckpt"]), str(second_ckpt)]
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: (chosen, ""))
    qtbot.mouseClick(panel.choose_button, Qt.MouseButton.LeftButton)
    assert panel.models() == chosen
    qtbot.waitUntil(lambda: not panel.empty_state.isVisible(), timeout=5000)
    assert panel.header.text().startswith("2 models")

    study = [str(p) for p in study_checkpoints()]
    if not study:
        pytest.skip("no study checkpoints beside this checkout")
    panel.set_models([])
    assert panel.empty_state.isVisible() and panel.study_button.isEnabled()
    qtbot.mouseClick(panel.study_button, Qt.MouseButton.LeftButton)
    assert panel.models() == study and len(study) == 14


def test_grid_png_export(qtbot, window, files, tmp_path):
    loaded(qtbot, window, files)
    window.controls.fusion.setCurrentText("min")
    assert window.wait_until_idle(5000)
    target = tmp_path / "grid.png"
    window.export_grid(target, scale=4)
    png = np.asarray(Image.open(target).convert("RGB"))
    mosaic = window.explorer.mosaic[..., :3]
    meta = read_png_metadata(target)
    x0, y0, x1, y1 = meta["grid"]["mosaic_box"]
    assert (x1 - x0, y1 - y0) == (4 * mosaic.shape[1], 4 * mosaic.shape[0])
    np.testing.assert_array_equal(png[y0:y1:4, x0:x1:4], mosaic)
    # Labelled: ink above every column and left of every layer row.
    lay = window.explorer.layout_
    for j in range(lay.columns):
        cx = x0 + int(4 * (lay.x0[j] + lay.cols / 2))
        assert (png[:y0, cx - 6 : cx + 6] < 128).any(), f"no label over column {j}"
    for i in range(lay.layers):
        cy = y0 + int(4 * (lay.y0[i] + lay.rows / 2))
        assert (png[cy - 4 : cy + 4, :x0] < 128).any(), f"no label left of layer {i}"
    assert meta["grid"]["row_labels"] == [f"L{i}" for i in range(lay.layers)]
    assert meta["grid"]["columns"] == ["h0", "h1", "h2", "h3", "fused", "rollout"]
    assert meta["grid"]["fusion"] == "min" and meta["settings"]["fusion"] == "min"
    assert meta["checkpoint"] == str(files["ckpt"])
    before = target.read_bytes()
    with pytest.raises(ExportError, match="exists"):
        window.export_grid(target)
    assert target.read_bytes() == before


def test_grid_png_colour_bars_give_the_cells_real_values(qtbot, window, files, tmp_path):
    """Shared scaling: the PNG carries one bar for the attention columns and one for rollout,
    with the real value ranges of the cells (recomputed here from the explorer's raw maps) and
    the colormap's colours; per-map: no bar (it would lie), every cell's own range in the
    metadata."""
    from inspector.core.postprocess import colorize

    loaded(qtbot, window, files)
    window.controls.colormap.setCurrentText("inferno")
    window.controls.scaling.setCurrentIndex(window.controls.scaling.findData("grid"))
    assert window.wait_until_idle(5000)
    target = tmp_path / "shared.png"
    window.export_grid(target, scale=4)
    png = np.asarray(Image.open(target).convert("RGB"))
    meta = read_png_metadata(target)["grid"]
    raw = window.explorer.data.raw.astype(np.float64)  # (L, H + 2, rows, cols)
    heads = window.explorer.layout_.heads
    bars = meta["colorbars"]
    assert [b["title"] for b in bars] == ["attention (heads and fused)", "rollout weight"]
    np.testing.assert_allclose(
        [bars[0]["lo"], bars[0]["hi"]], [raw[:, : heads + 1].min(), raw[:, : heads + 1].max()]
    )
    np.testing.assert_allclose([bars[1]["lo"], bars[1]["hi"]], [raw[:, -1].min(), raw[:, -1].max()])
    for bar in bars:
        x0, y0, x1, y1 = bar["box"]
        ramp = colorize(np.linspace(0, 1, x1 - x0, dtype=np.float32)[None], "inferno")[0, :, :3]
        np.testing.assert_array_equal(png[(y0 + y1) // 2, x0:x1], ramp)
        assert bar["colormap"] == "inferno"
        # its value labels are drawn under it: dark ink on the white page
        assert (png[y1 + 1 : y1 + 20, x0:x1] < 100).any()
    assert bars[0]["box"][1] > meta["mosaic_box"][3] and bars[1]["box"][1] > bars[0]["box"][3]

    window.controls.scaling.setCurrentIndex(window.controls.scaling.findData("per-map"))
    assert window.wait_until_idle(5000)
    own = tmp_path / "own.png"
    window.export_grid(own, scale=4)
    meta = read_png_metadata(own)["grid"]
    assert "colorbars" not in meta and "own min..max" in meta["note"]
    np.testing.assert_allclose(meta["cell_lo"], raw.min(axis=(-2, -1)))
    np.testing.assert_allclose(meta["cell_hi"], raw.max(axis=(-2, -1)))


def test_batch_export_of_a_folder(qtbot, window, files, tmp_path):
    with qtbot.waitSignal(window.modelLoaded, timeout=20_000):
        window.open_checkpoint(files["ckpt"])
    window.open_folder(files["img0"].parent)
    assert window.wait_until_idle(20_000)
    with qtbot.waitSignal(window.overlayUpdated, timeout=5000):
        window.controls.discard.setValue(60)
    s = window.current_settings()
    out = tmp_path / "batch"
    out.mkdir()
    with qtbot.waitSignal(window.batchFinished, timeout=30_000) as sig:
        window.batch_export(out)
    result = sig.args[0]
    assert result.status == "finished" and result.errors == [] and result.total == 3
    for i in range(3):
        image = files[f"img{i}"]
        png = out / f"img{i}_rollout_max_d0.60.png"
        assert png in result.written and png.with_suffix(".npy") in result.written
        assert png.with_name(png.stem + "_raw.npy") in result.written
        display, ref = _ref_map(files["ckpt"], image, s)
        np.testing.assert_allclose(np.load(png.with_suffix(".npy")), ref, atol=1e-6)
        meta = read_png_metadata(png)
        # The figure: 512 px, one display pixel per 8x8 block; compare block by block away
        # from the mask outline.
        figure = np.asarray(Image.open(png).convert("RGB")).astype(int)
        x0, y0 = 0, (figure.shape[0] - 512) // 2
        shown = figure[y0 + 4 : y0 + 512 : 8, x0 + 4 : x0 + 512 : 8]
        expected = overlay(display, ref, cmap=s.colormap, opacity=s.opacity).astype(int)
        m = read_mask(files[f"mask{i}"])
        mask = align_mask(m, m.shape, open_model(files["ckpt"]).checkpoint.preprocess)
        edge = mask & ~(
            np.roll(mask, 1, 0) & np.roll(mask, -1, 0) & np.roll(mask, 1, 1) & np.roll(mask, -1, 1)
        )
        assert np.abs(shown - expected)[~edge].max() <= 1
        assert meta["mask"]["source"] == "file" and meta["mask"]["path"] == str(files[f"mask{i}"])
        assert meta["settings"]["discard_ratio"] == pytest.approx(0.60)
        assert meta["image"] == str(image) and meta["checkpoint"] == str(files["ckpt"])
        assert meta["smm"] == pytest.approx(smm(ref, mask, s.smm_threshold), abs=1e-6)
    # Never overwrite silently: a second run refuses and leaves the files as they were.
    first = (out / "img0_rollout_max_d0.60.png").read_bytes()
    with pytest.raises(ExportError, match="already exist"):
        window.batch_export(out)
    assert (out / "img0_rollout_max_d0.60.png").read_bytes() == first


def test_batch_export_cancel_stops_between_images(qtbot, files, tmp_path):
    model = open_model(files["ckpt"])
    from inspector.gui.controls import ViewSettings

    images = [files[f"img{i}"] for i in range(3)]
    items = plan_batch(images, tmp_path, ViewSettings())
    job = BatchExport(model, items, ViewSettings())
    # Cancel from the worker thread right after the first image (deterministic).
    job.worker.progress.connect(lambda *_: job.cancel(), Qt.ConnectionType.DirectConnection)
    with qtbot.waitSignal(job.finished, timeout=30_000) as sig:
        job.start()
    result = sig.args[0]
    assert result.status == "cancelled"
    assert result.written == items[0].files
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in items[0].files)
