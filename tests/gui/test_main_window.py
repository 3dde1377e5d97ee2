"""The main window driven as a user would: open, drop, move sliders, click, export.

References are computed independently in the test: a second model opened from the same file,
:func:`inspector.core.saliency.compute_map`, :func:`inspector.core.postprocess.upsample` /
``normalise`` / ``overlay``; the model's forward calls are counted to prove that moving a slider
never runs it again. Every wait is on a signal or a condition, never a fixed sleep.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pytestqt")

from gui_helpers import CLASSES  # noqa: E402
from gui_helpers import loaded as _loaded
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent  # noqa: E402

from inspector.core.explain import capture_image, load_image, open_model  # noqa: E402
from inspector.core.export import read_png_metadata  # noqa: E402
from inspector.core.metrics import smm  # noqa: E402
from inspector.core.postprocess import normalise, overlay, upsample  # noqa: E402
from inspector.core.saliency import MapSettings, compute_map  # noqa: E402
from inspector.gui.export_dialog import ExportError  # noqa: E402
from inspector.gui.main_window import MainWindow  # noqa: E402
from inspector.gui.predictions import PREDICTIONS_SHOWN  # noqa: E402


def _reference(files, image: str, settings: MapSettings, cmap: str, opacity: float):
    """The overlay computed without the window: own model, own capture, core functions."""
    loaded = open_model(files["ckpt"])
    prepared = load_image(files[image], loaded)
    cap = capture_image(loaded, prepared)
    grid = compute_map(cap, settings=settings)
    full = normalise(upsample(grid, prepared.display.shape[:2]))
    return overlay(prepared.display, full, cmap=cmap, opacity=opacity), full, cap


def _count_forward(model) -> list[int]:
    calls = [0]
    for name in ("forward", "forward_with_attention"):
        original = getattr(model, name)

        def counted(*a, _orig=original, **k):
            calls[0] += 1
            return _orig(*a, **k)

        setattr(model, name, counted)
    return calls


def test_empty_state_has_no_image_and_no_prediction(window):
    assert window.image_view.displayed() is None
    assert "checkpoint" in window.image_view.message.toPlainText().lower()
    assert window.predictions.table.rowCount() == 0
    assert window.wait_until_idle(1000)


def test_overlay_equals_core_overlay_of_compute_map(qtbot, window, files):
    _loaded(qtbot, window, files)
    s = window.current_settings()
    shown = window.image_view.displayed()
    ref, full, cap = _reference(files, "img0", s.map, s.colormap, s.opacity)
    assert shown.shape == ref.shape
    np.testing.assert_array_equal(shown, ref)
    # The top predictions are the model's own, in order.
    table = window.predictions.table
    names = [table.item(r, 1).text().split()[0] for r in range(table.rowCount())]
    assert names == [CLASSES[c] for c, _ in cap.top_k(PREDICTIONS_SHOWN)]
    # The sample's mask was found beside it; SMM is the core's.
    assert window.mask is not None
    expected = smm(full, window.mask, s.smm_threshold)
    assert window.last_render.smm == pytest.approx(expected)


def test_discard_slider_changes_pixels_without_running_the_model(qtbot, window, files):
    _loaded(qtbot, window, files)
    calls = _count_forward(window.loaded.model)
    window.controls.fusion.setCurrentText("mean")
    assert window.wait_until_idle(5000)
    before = window.image_view.displayed().copy()
    with qtbot.waitSignal(window.overlayUpdated, timeout=5000):
        window.controls.discard.setValue(20)
    after = window.image_view.displayed()
    assert not np.array_equal(before, after)
    s = window.current_settings()
    assert s.map.discard_ratio == pytest.approx(0.20)
    ref, _, _ = _reference(files, "img0", s.map, s.colormap, s.opacity)
    np.testing.assert_array_equal(after, ref)
    assert calls[0] == 0  # cached capture: the model was not run again


def test_rapid_slider_moves_are_coalesced_and_newest_wins(qtbot, window, files):
    _loaded(qtbot, window, files)
    start = window.render_count
    for v in range(10, 60, 5):  # ten changes within one event-loop turn
        window.controls.discard.setValue(v)
    with qtbot.waitSignal(window.overlayUpdated, timeout=5000):
        pass
    assert window.wait_until_idle(5000)
    assert window.render_count == start + 1
    assert window.last_render.settings.map.discard_ratio == pytest.approx(0.55)


def test_fusion_and_opacity_and_hide(qtbot, window, files):
    _loaded(qtbot, window, files)
    calls = _count_forward(window.loaded.model)
    for fusion in ("min", "mean", "max"):
        with qtbot.waitSignal(window.overlayUpdated, timeout=5000):
            window.controls.fusion.setCurrentText(fusion)
        s = window.current_settings()
        assert s.map.fusion == fusion
        ref, _, _ = _reference(files, "img0", s.map, s.colormap, s.opacity)
        np.testing.assert_array_equal(window.image_view.displayed(), ref)
    with qtbot.waitSignal(window.overlayUpdated, timeout=5000):
        window.controls.show_overlay.setChecked(False)
    np.testing.assert_array_equal(window.image_view.displayed(), window.image.display)
    assert calls[0] == 0


def test_gradient_method_runs_in_worker_once_per_class(qtbot, window, files):
    _loaded(qtbot, window, files)
    window.controls.set_method("grad-rollout")
    assert window.wait_until_idle(20_000)
    s = window.current_settings()
    ref, _, _ = _reference(files, "img0", s.map, s.colormap, s.opacity)
    np.testing.assert_array_equal(window.image_view.displayed(), ref)
    calls = _count_forward(window.loaded.model)
    with qtbot.waitSignal(window.overlayUpdated, timeout=5000):
        window.controls.discard.setValue(50)
    assert window.wait_until_idle(5000)
    assert calls[0] == 0  # gradients of this class are cached
    # Choosing another class as target computes its gradients (once) in the worker.
    target = window.predictions.classes()[2]
    window.predictions.select_row(2)
    assert window.wait_until_idle(20_000)
    assert window.last_render.settings.map.class_index == target
    assert calls[0] == 1


def test_clicking_a_patch_makes_it_the_query(qtbot, window, files):
    _loaded(qtbot, window, files)
    cap = window.capture
    rows, cols = cap.grid_size
    size = window.image.display.shape[0]
    patch = size // cols
    with qtbot.waitSignal(window.overlayUpdated, timeout=5000):
        window.image_view.clicked.emit(3 * patch + 1, 5 * patch + 2)  # x in col 3, y in row 5
    s = window.current_settings()
    assert s.map.query == cap.num_prefix_tokens + 5 * cols + 3
    ref, _, _ = _reference(files, "img0", s.map, s.colormap, s.opacity)
    np.testing.assert_array_equal(window.image_view.displayed(), ref)
    assert window.image_view.query_box.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert window.wait_until_idle(5000)
    assert window.current_settings().map.query == 0


def test_latest_image_wins(qtbot, window, files):
    _loaded(qtbot, window, files)
    window.open_image(files["img1"])
    window.open_image(files["img2"])
    assert window.wait_until_idle(20_000)
    assert window.image_path == files["img2"]
    ref = load_image(files["img2"], window.loaded).display
    np.testing.assert_array_equal(window.image.display, ref)


def test_errors_are_messages_and_change_nothing(qtbot, window, files, tmp_path):
    _loaded(qtbot, window, files)
    shown = window.image_view.displayed().copy()
    loaded = window.loaded
    with qtbot.waitSignal(window.errorShown, timeout=10_000) as sig:
        window.open_checkpoint(tmp_path / "missing.pt")
    assert "missing.pt" in sig.args[0] and "Traceback" not in sig.args[0]
    with qtbot.waitSignal(window.errorShown, timeout=10_000) as sig:
        window.open_image(files["broken"])
    assert "broken.png" in sig.args[0]
    assert window.wait_until_idle(10_000)
    with qtbot.waitSignal(window.errorShown, timeout=5000):
        window.open_paths([files["txt"]])
    assert window.loaded is loaded
    assert window.image_path == files["img0"]
    np.testing.assert_array_equal(window.image_view.displayed(), shown)


def _drop(window, paths: list[Path]) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(window.width() / 2, window.height() / 2)
    enter = QDragEnterEvent(
        pos.toPoint(),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        pos,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(drop)


def test_drop_checkpoint_image_and_mask(qtbot, window, files):
    with qtbot.waitSignal(window.captureReady, timeout=20_000):
        _drop(window, [files["img1"], files["ckpt"], files["mask0"]])
    assert window.wait_until_idle(20_000)
    assert window.loaded is not None and window.image_path == files["img1"]
    # The dropped mask (not the image's own) is used: it is img0's mask in display geometry.
    from inspector.core.imageio import read_mask
    from inspector.core.preprocess import align_mask

    m0 = read_mask(files["mask0"])
    expected = align_mask(m0, m0.shape, window.loaded.checkpoint.preprocess)
    np.testing.assert_array_equal(window.mask, expected)


def test_drop_folder_then_arrow_keys(qtbot, window, files):
    with qtbot.waitSignal(window.modelLoaded, timeout=20_000):
        window.open_checkpoint(files["ckpt"])
    _drop(window, [files["img0"].parent])
    assert window.wait_until_idle(20_000)
    images = window.strip.paths()
    assert [p.name for p in images] == ["img0.png", "img1.png", "img2.png"]  # no masks, no junk
    assert window.image_path == images[0]
    window.strip.setFocus()
    qtbot.keyClick(window.strip, Qt.Key.Key_Right)
    assert window.wait_until_idle(20_000)
    assert window.image_path == images[1]
    qtbot.keyClick(window.strip, Qt.Key.Key_Left)
    assert window.wait_until_idle(20_000)
    assert window.image_path == images[0]


def test_export_png_metadata_npy_and_no_overwrite(qtbot, window, files, tmp_path):
    _loaded(qtbot, window, files)
    with qtbot.waitSignal(window.overlayUpdated, timeout=5000):
        window.controls.discard.setValue(40)
    target = tmp_path / "out.png"
    written = window.export_overlay(target, size=0, colorbar=False, outline=False)
    assert written == [
        target,
        tmp_path / "out.npy",
        tmp_path / "out_raw.npy",
        tmp_path / "out.json",
    ]
    png = np.asarray(Image.open(target).convert("RGB"))
    np.testing.assert_array_equal(png, window.image_view.displayed())
    meta = read_png_metadata(target)
    assert meta["settings"]["discard_ratio"] == pytest.approx(0.40)
    assert meta["settings"]["method"] == "rollout"
    assert meta["checkpoint"] == str(files["ckpt"])
    assert meta["predicted_class"] == window.capture.predicted_class
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), window.last_render.full)
    before = target.read_bytes()
    with pytest.raises(ExportError, match="exist"):
        window.export_overlay(target)
    assert target.read_bytes() == before
    window.export_overlay(target, overwrite=True, size=2 * png.shape[0], colorbar=False)
    assert Image.open(target).size == (2 * png.shape[1], 2 * png.shape[0])


def test_recent_files_and_layout_are_remembered(qtbot, files, tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.captureReady, timeout=20_000):
        w.open_checkpoint(files["ckpt"])
        w.open_image(files["img0"])
    w.explorer_dock.hide()
    w.close()
    w2 = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w2)
    recent = w2.recent_files()
    assert recent[:2] == [str(files["img0"].resolve()), str(files["ckpt"].resolve())]
    assert [a.text() for a in w2.recent_menu.actions()][:2] == ["img0.png", "tiny.pt"]
    w2.show()
    assert not w2.explorer_dock.isVisible()
    w2.close()
