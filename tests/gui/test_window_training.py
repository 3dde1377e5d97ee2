"""Training from the main window's training panel, end to end (synthetic data, tiny sizes).

The finished model must open in the inspector (its predictions are checked against the model
loaded independently from the written file); Cancel and closing the window stop the job between
steps with the last completed epoch's checkpoint intact. ``QMessageBox.question`` is patched to
give the user's answer: the dialog is not what is under test, the window's reaction is.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("pytestqt")

from gui_helpers import configure_training, loaded  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from inspector.core.checkpoint import load_checkpoint  # noqa: E402
from inspector.core.explain import capture_image, load_image, open_model  # noqa: E402
from inspector.gui.predictions import PREDICTIONS_SHOWN  # noqa: E402


def test_finished_training_opens_in_the_inspector(qtbot, window, files, tmp_path):
    loaded(qtbot, window, files)
    before = window.loaded
    panel = window.panels["training"]
    out = tmp_path / "run"
    configure_training(panel, out, epochs=1)
    with qtbot.waitSignal(window.modelLoaded, timeout=60_000) as sig:
        qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert sig.args[0] == str(out / "best.pt")
    assert window.wait_until_idle(20_000)
    assert window.loaded is not before and window.loaded.path == out / "best.pt"
    assert "best.pt" in window.model_label.text()
    # The open image was captured again with the new model: its predictions are shown.
    ref = open_model(out / "best.pt")
    cap = capture_image(ref, load_image(files["img0"], ref))
    top = cap.top_k(PREDICTIONS_SHOWN)
    assert len(top) == 3  # three classes
    shown = [
        window.predictions.table.item(r, 1).text().split()[0]
        for r in range(window.predictions.table.rowCount())
    ]
    assert shown == [ref.class_names[c] for c, _ in top]
    assert window.capture.predicted_class == cap.predicted_class
    assert window.last_render is not None and window.last_render.full is not None


def test_cancel_from_the_window_stops_and_keeps_the_model(qtbot, window, files, tmp_path):
    loaded(qtbot, window, files)
    before = window.loaded
    panel = window.panels["training"]
    configure_training(panel, tmp_path / "long", epochs=500, train_per_class=8, batch=4)
    assert panel.start()
    qtbot.waitUntil(lambda: panel.progress.value() > 0, timeout=30_000)  # steps are running
    with qtbot.waitSignal(panel.job_ended, timeout=30_000) as sig:
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    assert sig.args[0] == "stopped"
    assert not panel.is_running() and panel.start_button.isEnabled()
    assert window.wait_until_idle(5000)
    assert window.loaded is before  # a stopped job does not replace the inspected model


def test_closing_during_training_asks_then_stops_cleanly(
    qtbot, window, files, tmp_path, monkeypatch
):
    panel = window.panels["training"]
    out = tmp_path / "closing"
    configure_training(panel, out, epochs=500)
    asked: list[str] = []
    answer = [QMessageBox.StandardButton.No]

    def question(parent, title, text, *args, **kwargs):
        asked.append(title)
        return answer[0]

    monkeypatch.setattr(QMessageBox, "question", question)
    assert panel.start()
    qtbot.waitUntil(lambda: len(panel.history()) >= 2, timeout=60_000)  # epochs were saved
    # "No": the window stays open and the job goes on.
    window.close()
    assert asked == ["Training is running"] and window.isVisible() and panel.is_running()
    answer[0] = QMessageBox.StandardButton.Yes
    window.close()
    assert len(asked) == 2 and not window.isVisible()
    assert not panel.is_running()
    assert panel.last_result()[0] == "stopped"
    # The last checkpoint is a complete, loadable file of a completed epoch, consistent with
    # history.json; no temporary file was left behind.
    ckpt = load_checkpoint(out / "last.pt")
    rows = json.loads((out / "history.json").read_text())
    assert len(ckpt.history) >= 2 and len(ckpt.history) == len(rows)
    assert [r["epoch"] for r in ckpt.history] == list(range(1, len(rows) + 1))
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]
