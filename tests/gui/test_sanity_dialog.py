"""The Sanity Check dialog as a user runs it: Ctrl+Alt+S on an open image, the cascade runs
off the GUI thread, its table and figure appear, and Save writes the CLI's files with the
CLI's numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gui_helpers import loaded
from PySide6.QtCore import Qt

from inspector.cli import main

CTRL_ALT = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier


def test_shortcut_runs_the_cascade_and_saves_the_clis_numbers(qtbot, window, files, tmp_path):
    loaded(qtbot, window, files)
    window.controls.set_method("rollout")
    window.refresh()
    qtbot.keyClick(window, Qt.Key.Key_S, CTRL_ALT)
    dialog = window.sanity
    assert dialog is not None and dialog.isVisible()
    with qtbot.waitSignal(dialog.finishedRun, timeout=60_000) as blocker:
        pass
    result = blocker.args[0]
    assert not result.stopped
    # What the user reads: one row per step, the trained model's own map first (ρ = SSIM = 1).
    rows = dialog.table.rowCount()
    assert rows == dialog.steps == len(result.layers)
    assert dialog.table.item(0, 0).text() == "original"
    assert dialog.table.item(0, 1).text() == "1.000" and dialog.table.item(0, 2).text() == "1.000"
    assert dialog.progress.value() == dialog.steps
    assert not dialog.figure.pixmap().isNull()
    # The figure fits the dialog's width (no sideways scrolling), aspect kept, and the
    # curves are the table's numbers.
    fig, src = dialog.figure.pixmap(), dialog.figure.source
    assert fig.width() <= dialog.figure.width() and src.width() > 96 * rows
    assert abs(fig.height() / fig.width() - src.height() / src.width()) < 0.02
    # The label grows to the figure's height once the dialog's layout has run.
    qtbot.waitUntil(lambda: dialog.figure.height() >= dialog.figure.pixmap().height(), timeout=5000)
    _, rho = dialog.curves.rho.getData()
    _, ssim = dialog.curves.ssim.getData()
    np.testing.assert_allclose(
        ssim, [float(dialog.table.item(i, 2).text()) for i in range(rows)], atol=5e-4
    )
    assert rho[0] == pytest.approx(1.0) and len(ssim) == rows
    # The randomised model explains something else: the last step's map is not the first.
    assert not np.allclose(result.maps[-1], result.maps[0])
    # Save, then the CLI on the same checkpoint, image and settings: the same scores.
    written = dialog.save_to(tmp_path / "gui")
    assert sorted(p.name for p in written) == ["sanity.csv", "sanity.json", "sanity.png"]
    s = window.controls.settings()
    rc = main(
        ["sanity", "--checkpoint", str(files["ckpt"]), "--image", str(files["img0"]),
         "--method", "rollout", "--fusion", s.map.fusion, "--discard", str(s.map.discard_ratio),
         "--smooth", s.smoothing, "--device", "cpu", "--out", str(tmp_path / "cli")]
    )  # fmt: skip
    assert rc == 0
    gui = json.loads((tmp_path / "gui" / "sanity.json").read_text())
    cli = json.loads((tmp_path / "cli" / "sanity.json").read_text())
    assert gui["layers"] == cli["layers"]
    for a, b in zip(gui["records"], cli["records"], strict=True):
        assert a["layer"] == b["layer"]
        assert abs(a["ssim"] - b["ssim"]) < 1e-6
        assert (a["spearman"] is None) == (b["spearman"] is None)
        if a["spearman"] is not None:
            assert abs(a["spearman"] - b["spearman"]) < 1e-6


def test_cancel_keeps_the_steps_done_and_the_window_answers(qtbot, window, files):
    loaded(qtbot, window, files)
    qtbot.keyClick(window, Qt.Key.Key_S, CTRL_ALT)
    dialog = window.sanity
    with qtbot.waitSignal(dialog.progressed, timeout=60_000):
        pass
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(dialog.finishedRun, timeout=60_000) as blocker:
        pass
    result = blocker.args[0]
    assert dialog.table.rowCount() == len(result.layers) >= 1
    assert result.stopped or len(result.layers) == dialog.steps  # it may have just finished
    assert "cancelled" in dialog.status.text() or not result.stopped


def test_without_an_image_the_shortcut_says_what_is_missing(qtbot, window):
    qtbot.keyClick(window, Qt.Key.Key_S, CTRL_ALT)
    assert getattr(window, "sanity", None) is None
    assert "open a checkpoint and an image" in window.statusBar().currentMessage()
