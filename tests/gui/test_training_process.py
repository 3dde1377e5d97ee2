"""Issue 11: training runs in a child process, and the training panel fits its dock.

A user clicks Start, watches epochs arrive and the job finish; cancels mid-run and resumes
from the folder; starts without choosing a folder (a fresh ``runs/<preset>-<time>``); and the
panel at 1280x720 shows Start, Cancel and the progress with no horizontal scroll bar.
"""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("pytestqt")

from gui_helpers import configure_training  # noqa: E402
from PySide6.QtCore import QPoint, QRect, Qt  # noqa: E402

from inspector.core.checkpoint import load_checkpoint  # noqa: E402
from inspector.gui.training_panel import TrainingPanel  # noqa: E402


@pytest.fixture
def panel(qtbot):
    w = TrainingPanel()
    qtbot.addWidget(w)
    w.resize(900, 700)
    w.show()
    yield w
    assert w.request_stop_and_wait(30_000)


def click(qtbot, button) -> None:
    assert button.isVisible() and button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_start_trains_in_a_child_process_and_reports_epochs(panel, qtbot, tmp_path):
    out = tmp_path / "run"
    configure_training(panel, out, epochs=2, train_per_class=2)
    with qtbot.waitSignal(panel.epoch_reported, timeout=60_000) as first:
        click(qtbot, panel.start_button)
        # The job is another process: the GUI process only reads its lines.
        job = panel._job
        qtbot.waitUntil(lambda: job.process.process.processId() > 0, timeout=10_000)
        assert job.process.process.processId() != os.getpid()
    assert first.args[0]["epoch"] == 1
    with qtbot.waitSignal(panel.finished, timeout=60_000) as done:
        pass
    assert done.args[0] == str(out / "best.pt")
    history = json.loads((out / "history.json").read_text())
    # The epoch the panel reported is the row the child wrote (same numbers, not re-derived).
    assert first.args[0] == history[0]
    assert [r["epoch"] for r in panel.history()] == [1, 2]
    assert panel.history() == history
    ckpt = load_checkpoint(out / "best.pt")
    assert ckpt.config.num_classes == 3 and ckpt.config.depth == panel.depth_spin.value()
    assert panel.progress.value() == 1000 and panel.start_button.isEnabled()
    log = panel.log_view.toPlainText()
    assert "loaded 6 training and 6 validation images, 3 classes" in log
    assert "epoch 2/2" in log and "finished:" in log


def test_custom_architecture_reaches_the_child(panel, qtbot, tmp_path):
    out = tmp_path / "custom"
    configure_training(panel, out, epochs=1, train_per_class=1)
    panel.depth_spin.setValue(2)
    panel.heads_spin.setValue(2)
    panel.pos_combo.setCurrentText("learned")
    panel.layernorm_check.setChecked(False)
    assert panel.preset_combo.currentText() == "custom"
    with qtbot.waitSignal(panel.finished, timeout=60_000):
        click(qtbot, panel.start_button)
    cfg = load_checkpoint(out / "last.pt").config
    want = panel.model_config()
    for key in ("depth", "num_heads", "hidden_size", "pos_encoding", "residual", "layernorm"):
        assert getattr(cfg, key) == getattr(want, key), key


def test_cancel_mid_run_keeps_a_resumable_folder_and_resume_continues(panel, qtbot, tmp_path):
    out = tmp_path / "long"
    configure_training(panel, out, epochs=40, train_per_class=12, batch=4)
    assert not panel.resume_button.isVisible()
    with qtbot.waitSignal(panel.epoch_reported, timeout=60_000):
        click(qtbot, panel.start_button)
    assert panel.cancel_button.isVisible()
    with qtbot.waitSignal(panel.job_ended, timeout=60_000) as ended:
        click(qtbot, panel.cancel_button)
    assert ended.args[0] == "stopped", ended.args
    assert panel.error_label.isHidden()
    before = json.loads((out / "history.json").read_text())
    assert 1 <= len(before) < 40
    load_checkpoint(out / "last.pt").build_model()  # intact after SIGTERM
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    # The folder holds a run that can continue: Resume is offered and says how far.
    qtbot.waitUntil(panel.resume_button.isVisible, timeout=5000)
    assert panel.resume_button.isEnabled()
    assert f"after {len(before)} of its epochs" in panel.resume_label.text()
    panel.epochs_spin.setValue(len(before) + 1)
    with qtbot.waitSignal(panel.finished, timeout=60_000):
        click(qtbot, panel.resume_button)
    after = json.loads((out / "history.json").read_text())
    assert [r["epoch"] for r in after] == list(range(1, len(before) + 2))
    assert after[: len(before)] == before  # the saved epochs were kept, not retrained
    # Done: the run is finished at the form's epochs, so Resume waits for more epochs.
    qtbot.waitUntil(lambda: "finished run" in panel.resume_label.text(), timeout=5000)
    assert not panel.resume_button.isEnabled()


def test_resume_offer_follows_the_folder(panel, qtbot, tmp_path):
    configure_training(panel, tmp_path / "nothing", epochs=2)
    # Nothing to resume in a folder that does not exist.
    qtbot.waitUntil(lambda: not panel._resume_timer.isActive(), timeout=5000)
    assert panel.resume_button.isHidden() and panel.resume_label.isHidden()
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "history.json").write_text("[]")
    panel.out_edit.clear()
    qtbot.keyClicks(panel.out_edit, str(partial))  # the user types the folder
    qtbot.waitUntil(panel.resume_label.isVisible, timeout=5000)
    assert panel.resume_button.isHidden()  # no run_state.pt: nothing to resume from
    assert "nothing to resume" in panel.resume_label.text()


def test_first_start_needs_no_folder_and_each_start_gets_a_fresh_one(qtbot, tmp_path, monkeypatch):
    from inspector import paths

    monkeypatch.setattr(paths, "RUNS", tmp_path / "runs")  # not the repository's runs/
    fresh = TrainingPanel()
    qtbot.addWidget(fresh)
    fresh.show()
    assert fresh.out_edit.text().startswith(str(tmp_path / "runs" / "baseline-"))
    configure_training(fresh, tmp_path / "unused", epochs=1, train_per_class=1)
    fresh._auto_out = True  # as a new panel: the user has not chosen a folder
    fresh.preset_combo.setCurrentText("heads-2")
    default = fresh.out_edit.text()
    assert default.startswith(str(tmp_path / "runs" / "heads-2-")), default
    with qtbot.waitSignal(fresh.finished, timeout=60_000) as first:
        click(qtbot, fresh.start_button)
    assert first.args[0].startswith(str(tmp_path / "runs" / "heads-2-"))
    log_first = fresh.log_view.toPlainText()
    with qtbot.waitSignal(fresh.finished, timeout=60_000) as second:
        click(qtbot, fresh.start_button)
    assert second.args[0] != first.args[0]  # no "already holds a run" on the second Start
    # The log shows the new job only.
    assert str(first.args[0]).removesuffix("/best.pt") in log_first
    assert str(first.args[0]).removesuffix("/best.pt") not in fresh.log_view.toPlainText()
    assert fresh.request_stop_and_wait(30_000)


def test_starting_does_not_scroll_the_form_to_the_top(panel, qtbot, tmp_path):
    panel.resize(520, 420)  # short: the form scrolls
    configure_training(panel, tmp_path / "scroll", epochs=40, train_per_class=12, batch=4)
    bar = panel.scroll.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=5000)
    bar.setValue(bar.maximum())
    bottom = bar.value()
    panel.epochs_spin.setFocus()
    with qtbot.waitSignal(panel.running_changed, timeout=5000):
        click(qtbot, panel.start_button)
    qtbot.waitUntil(lambda: panel.progress.value() > 0, timeout=60_000)
    assert bar.value() == bottom
    with qtbot.waitSignal(panel.job_ended, timeout=60_000):
        click(qtbot, panel.cancel_button)
    assert bar.value() == bottom


def test_panel_fits_its_dock_at_1280x720(qtbot, window, tmp_path):
    window.resize(1280, 720)
    panel = window.panels["training"]
    dock = window.extra_docks["training"]
    dock.raise_()
    qtbot.waitUntil(lambda: panel.isVisible() and panel.width() > 0, timeout=5000)
    qtbot.wait(50)  # the dock widening is applied on the event loop
    configure_training(panel, tmp_path / "fit", epochs=1)
    panel.status_label.setText("a long status " * 30)  # wraps instead of widening the panel

    def inside_window(w) -> bool:
        top_left = w.mapTo(window, QPoint(0, 0))
        return window.rect().contains(QRect(top_left, w.size()))

    for width in (dock.width(), 420):
        window.resizeDocks([dock], [width], Qt.Orientation.Horizontal)
        qtbot.wait(30)
        # No horizontal scroll bar: not the panel's, not the dock's wrapper.
        assert not panel.scroll.horizontalScrollBar().isVisible()
        outer = dock.widget()
        if hasattr(outer, "horizontalScrollBar"):
            assert not outer.horizontalScrollBar().isVisible()
        viewport = panel.scroll.viewport().width()
        assert panel.loss_plot.width() <= viewport and panel.acc_plot.width() <= viewport
        # The buttons and the progress are on screen, inside the window, at any scroll.
        for w in (panel.start_button, panel.cancel_button, panel.progress):
            assert w.isVisible() and inside_window(w), (width, w)
        assert panel.status_label.width() <= panel.width()


def test_a_crashing_child_shows_one_line_not_a_traceback(tmp_path):
    import subprocess
    import sys

    from inspector.gui.cli_process import error_line

    crash = subprocess.run(
        [sys.executable, "-c", "def f():\n    raise RuntimeError('boom at step 3')\nf()"],
        capture_output=True,
        text=True,
    )
    assert "Traceback" in crash.stderr  # a real traceback, several lines
    assert error_line(crash.stderr) == "unexpected error: RuntimeError: boom at step 3"
    # The CLI's own one-line error wins over anything printed before it.
    assert error_line("warning: x\nvit-inspector: error: no such folder: /d\n") == (
        "no such folder: /d"
    )


def test_study_job_runs_in_a_child_process(panel, qtbot, tmp_path):
    out = tmp_path / "study"
    configure_training(panel, out, epochs=1, train_per_class=2)
    panel.study_box.set_presets(["baseline"])
    panel.study_box.seeds_spin.setValue(1)
    panel.study_box.jobs_spin.setValue(1)
    with qtbot.waitSignal(panel.study_finished, timeout=120_000) as done:
        click(qtbot, panel.study_box.run_button)
        job = panel._job
        qtbot.waitUntil(lambda: job.process.process.processId() > 0, timeout=10_000)
        assert job.process.process.processId() != os.getpid()
        assert "ablate" in job.process.args and "--events=json" in job.process.args
    assert done.args[0] == [str(out / "runs" / "baseline" / "seed-0" / "last.pt")]
    assert panel.study_table.rowCount() == 1
