"""File ▸ Export Overlay… (Ctrl+E) and Export Grid… (Ctrl+Shift+E) driven as a user would:
type a folder that does not exist, click Export, answer the question box; the files are read
back and checked against an independent float64 forward pass of the same weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("pytestqt")

from gui_helpers import loaded  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from inspector.core.checkpoint import load_checkpoint  # noqa: E402
from inspector.core.explain import load_image, open_model  # noqa: E402
from inspector.core.saliency import registry  # noqa: E402


def _type(qtbot, edit, text: str) -> None:
    edit.setFocus()
    edit.selectAll()
    qtbot.keyClicks(edit, text)


def _answer(qtbot, dialog, button) -> None:
    qtbot.waitUntil(lambda: dialog.confirm is not None and dialog.confirm.isVisible(), timeout=5000)
    qtbot.mouseClick(dialog.confirm.button(button), Qt.MouseButton.LeftButton)


def _open_dialog(qtbot, window, key=Qt.Key.Key_E, mods=Qt.KeyboardModifier.ControlModifier):
    window.export_dialog = None
    window.activateWindow()  # the user's click back on the window after a dialog closed
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    qtbot.keyClick(window, key, mods)
    qtbot.waitUntil(
        lambda: window.export_dialog is not None and window.export_dialog.isVisible(), timeout=5000
    )
    return window.export_dialog


def test_export_dialog_creates_a_missing_folder_and_writes_a_paper_figure(
    qtbot, window, files, tmp_path
):
    loaded(qtbot, window, files)  # img0 with its img0_mask.png
    window.controls.set_method("attention")
    window.controls.layer.setValue(1)
    window.controls.head.setValue(2)
    assert window.wait_until_idle(10_000)
    assert window.mask is not None

    dialog = _open_dialog(qtbot, window)
    folder = tmp_path / "figures" / "new"
    _type(qtbot, dialog.folder_edit, str(folder))
    _type(qtbot, dialog.name_edit, "fig.png")
    _type(qtbot, dialog.size_spin, "256")
    assert dialog.outline_box.isChecked() and dialog.colorbar_box.isChecked()
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(dialog.exported, timeout=10_000) as sig:
        _answer(qtbot, dialog, QMessageBox.StandardButton.Yes)  # "Create folder?"
    png, npy, raw, js = (folder / n for n in ("fig.png", "fig.npy", "fig_raw.npy", "fig.json"))
    assert sig.args[0] == [png, npy, raw, js]

    meta = json.loads(js.read_text())
    # The figure: 256 px image, the mask outlined in white, a colour bar beside it.
    fig = np.asarray(Image.open(png).convert("RGB"))
    x0, y0, x1, y1 = meta["figure"]["image_box"]
    assert (x1 - x0, y1 - y0) == (256, 256) and fig.shape[1] > 256
    bx0, by0, bx1, by1 = meta["figure"]["bar_box"]
    assert by1 - by0 == 256 and bx0 >= x1
    img = fig[y0:y1, x0:x1]
    mask_up = np.repeat(np.repeat(window.mask, 4, 0), 4, 1)
    white = (img == 255).all(axis=2)
    base = np.repeat(np.repeat(window.last_render.rgb, 4, 0), 4, 1)
    outlined = white & (base != 255).any(axis=2)
    assert outlined.any()
    assert mask_up[outlined].all(), "outline drawn outside the mask"
    # every outline pixel is within one output pixel (width 256 // 256) of the background
    p = np.pad(mask_up, 1, constant_values=True)
    interior = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    assert not (outlined & interior).any()

    # The raw map: the head's attention in probabilities, against a float64 forward pass.
    model = load_checkpoint(files["ckpt"]).build_model().double().eval()
    x = load_image(files["img0"], open_model(files["ckpt"])).tensor.double()
    with torch.no_grad():
        attn = model.forward_with_attention(x).attentions[1][0, 2, 0, 1:].numpy()
    np.testing.assert_allclose(np.load(raw), attn.reshape(8, 8), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(meta["figure"]["colorbar"]["hi"], window.map_scale.hi, rtol=1e-6)
    np.testing.assert_array_equal(np.load(npy), window.last_render.full)

    # Metadata: only the settings raw attention reads; the mask's file named.
    uses = registry.get("attention").uses
    method_keys = set(meta["settings"]) - {
        "smoothing",
        "colormap",
        "opacity",
        "show_overlay",
        "smm_threshold",
    }
    # one head shown: its fusion is not read either
    assert method_keys == {"method"} | (set(uses) - {"fusion"})
    assert "discard_ratio" not in meta["settings"]
    assert meta["mask"] == {
        "source": "file",
        "path": str(files["mask0"]),
        "pixels": int(window.mask.sum()),
        "shape": list(window.mask.shape),
    }

    # Again into the same files: asked to replace; No leaves them as they were.
    before = {f: f.read_bytes() for f in (png, npy, raw, js)}
    dialog = _open_dialog(qtbot, window)
    _type(qtbot, dialog.folder_edit, str(folder))
    _type(qtbot, dialog.name_edit, "fig.png")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    _answer(qtbot, dialog, QMessageBox.StandardButton.No)
    assert {f: f.read_bytes() for f in before} == before
    assert dialog.isVisible()


def test_painted_mask_is_named_in_the_metadata(qtbot, window, files, tmp_path):
    loaded(qtbot, window, files)
    panel = window.panels["masks"]
    with qtbot.waitSignal(window.maskChanged, timeout=5000):
        panel.set_box(4, 4, 30, 30)
    assert window.export_metadata()["mask"]["source"] == "box"
    written = window.export_overlay(tmp_path / "b.png")
    assert json.loads(written[3].read_text())["mask"]["source"] == "box"


def test_grid_dialog_offers_to_create_the_folder(qtbot, window, files, tmp_path):
    loaded(qtbot, window, files)
    window.explorer_dock.show()
    window.refresh_explorer()
    qtbot.waitUntil(lambda: not window.explorer.is_empty(), timeout=10_000)
    dialog = _open_dialog(
        qtbot,
        window,
        Qt.Key.Key_E,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    folder = tmp_path / "grids"
    _type(qtbot, dialog.folder_edit, str(folder))
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(dialog.exported, timeout=10_000) as sig:
        _answer(qtbot, dialog, QMessageBox.StandardButton.Yes)
    (path,) = sig.args[0]
    assert path.parent == folder and path.is_file()
    assert Image.open(path).size[0] > 6 * window.explorer.mosaic.shape[1]  # labels added


def test_batch_export_dialog_honours_its_options_and_asks_before_replacing(
    qtbot, window, files, tmp_path
):
    """File ▸ Batch Export Folder… (Ctrl+Alt+E): a folder that does not exist is created on
    request, the figure size and the colour-bar choice reach every file, and a second export
    into the same folder asks before it replaces anything."""
    with qtbot.waitSignal(window.modelLoaded, timeout=20_000):
        window.open_checkpoint(files["ckpt"])
    window.open_folder(files["img0"].parent)
    assert window.wait_until_idle(20_000)
    n = len(window.exports.batch_images())
    assert n == 3
    alt = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
    dialog = _open_dialog(qtbot, window, Qt.Key.Key_E, alt)
    assert not dialog.name_edit.isVisible() and "3 image(s)" in dialog.files_label.text()
    folder = tmp_path / "batch" / "new"
    _type(qtbot, dialog.folder_edit, str(folder))
    _type(qtbot, dialog.size_spin, "128")
    qtbot.mouseClick(dialog.colorbar_box, Qt.MouseButton.LeftButton)  # off
    assert not dialog.colorbar_box.isChecked() and dialog.outline_box.isChecked()
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(window.batchFinished, timeout=30_000) as sig:
        _answer(qtbot, dialog, QMessageBox.StandardButton.Yes)  # "Create folder?"
    result = sig.args[0]
    assert result.status == "finished" and result.errors == [] and len(result.written) == 4 * n
    pngs = sorted(p for p in result.written if p.suffix == ".png")
    for png in pngs:
        meta = json.loads(png.with_suffix(".json").read_text())
        x0, y0, x1, y1 = meta["figure"]["image_box"]
        assert (x1 - x0, y1 - y0) == (128, 128)
        assert meta["figure"].get("bar_box") is None  # no colour bar asked for
        assert Image.open(png).size[0] == 128  # nothing beside the image
        assert meta["mask"]["source"] == "file"  # each image's own mask, outlined
    before = {p: p.read_bytes() for p in result.written}

    # Again into the same folder: "Replace files?" No leaves everything as it was.
    dialog = _open_dialog(qtbot, window, Qt.Key.Key_E, alt)
    _type(qtbot, dialog.folder_edit, str(folder))
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    _answer(qtbot, dialog, QMessageBox.StandardButton.No)
    assert dialog.isVisible() and all(p.read_bytes() == b for p, b in before.items())
    # Yes replaces them, with the new options (the colour bar is back by default).
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(window.batchFinished, timeout=30_000) as sig:
        _answer(qtbot, dialog, QMessageBox.StandardButton.Yes)
    assert sig.args[0].status == "finished" and len(sig.args[0].written) == 4 * n
    meta = json.loads(pngs[0].with_suffix(".json").read_text())
    assert meta["figure"]["bar_box"] is not None
