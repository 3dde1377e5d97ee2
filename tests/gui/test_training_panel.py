"""The training panel drives the real core training loop on a worker thread (pytest-qt)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from gui_helpers import configure_training  # noqa: E402

from inspector.core.checkpoint import load_checkpoint  # noqa: E402
from inspector.core.config import preset  # noqa: E402
from inspector.gui.training_panel import TrainingPanel, format_eta  # noqa: E402


@pytest.fixture
def panel(qtbot):
    w = TrainingPanel()
    qtbot.addWidget(w)
    yield w
    assert w.request_stop_and_wait(30_000)


def test_preset_fills_every_switch(panel):
    for name in ("no-residual", "heads-2", "pos-learned", "baseline"):
        panel.preset_combo.setCurrentText(name)
        ref = preset(name)
        got = panel.model_config()
        for key in ("pos_encoding", "depth", "num_heads", "hidden_size", "residual", "layernorm"):
            assert getattr(got, key) == getattr(ref, key), (name, key)
    # Changing one switch by hand names the preset it now matches.
    panel.depth_spin.setValue(8)
    assert panel.preset_combo.currentText() == "blocks-8"
    panel.hidden_spin.setValue(12)
    assert panel.preset_combo.currentText() == "custom"
    panel.double_softmax_check.setChecked(True)
    assert panel.model_config().output_softmax is True


def test_short_training_finishes_and_curves_match_history(panel, qtbot, tmp_path):
    out = tmp_path / "run"
    configure_training(panel, out, epochs=2, train_per_class=2)
    hints = panel.curves.hints  # empty axes say what fills them, until the first batch
    assert len(hints) == 2 and all(h.isVisibleTo(panel) and "Start" in h.text() for h in hints)
    with qtbot.waitSignal(panel.finished, timeout=60_000) as blocker:
        assert panel.start()
        assert not panel.start_button.isEnabled()
    path = blocker.args[0]
    assert path == str(out / "best.pt")
    assert not panel.is_running() and panel.start_button.isEnabled()
    history = json.loads((out / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2]
    for curve, key in (
        (panel.train_loss_curve, "train_loss"),
        (panel.val_loss_curve, "val_loss"),
        (panel.train_acc_curve, "train_acc"),
        (panel.val_acc_curve, "val_accuracy"),
    ):
        x, y = curve.getData()
        np.testing.assert_array_equal(x, [1, 2])
        np.testing.assert_allclose(y, [r[key] for r in history], rtol=0, atol=1e-12)
    ckpt = load_checkpoint(path)
    assert ckpt.config.num_classes == 3
    assert len(load_checkpoint(out / "last.pt").history) == 2
    assert panel.progress.value() == panel.progress.maximum()
    assert not any(h.isVisibleTo(panel) for h in hints)


def test_cancel_stops_cleanly(panel, qtbot, tmp_path):
    out = tmp_path / "long"
    configure_training(panel, out, epochs=500, train_per_class=12, batch=4)
    # Wait for the first epoch so that a checkpoint exists, then cancel mid-run.
    with qtbot.waitSignal(panel.job_ended, timeout=60_000) as ended:
        panel.start()
        qtbot.waitUntil(lambda: len(panel.history()) >= 1, timeout=60_000)
        panel.cancel()
    assert ended.args[0] == "stopped"
    assert not panel.is_running()
    assert panel.start_button.isEnabled() and not panel.cancel_button.isEnabled()
    assert panel._job is None
    epochs_done = len(json.loads((out / "history.json").read_text()))
    assert 1 <= epochs_done < 500
    ckpt = load_checkpoint(out / "last.pt")  # intact: loads and builds
    ckpt.build_model()
    assert len(ckpt.history) == epochs_done
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))


def test_request_stop_and_wait_ends_thread(panel, qtbot, tmp_path):
    configure_training(panel, tmp_path / "close", epochs=500, train_per_class=12, batch=4)
    panel.start()
    qtbot.waitUntil(lambda: panel.progress.value() > 0, timeout=60_000)
    assert panel.request_stop_and_wait(30_000)
    assert not panel.is_running() and panel.start_button.isEnabled()
    assert panel.last_result()[0] == "stopped"


def test_bad_dataset_folder_shows_error(panel, qtbot, tmp_path):
    empty = tmp_path / "not-a-dataset"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    panel.set_dataset("folder", empty)
    panel.set_output_dir(tmp_path / "out")
    with qtbot.waitSignal(panel.job_ended, timeout=30_000) as ended:
        panel.start()
    assert ended.args[0] == "failed"
    for hint in panel.curves.hints:  # not "waiting for the first batch" after the job ended
        assert hint.isVisibleTo(panel) and hint.text() == "The job failed before its first batch"
    message = panel.error_label.text()
    assert panel.error_label.isVisibleTo(panel) and message
    # The core's DatasetError message, not an unexpected crash or a traceback.
    assert not message.startswith("unexpected error") and "Traceback" not in message
    assert panel.start_button.isEnabled()
    assert not (tmp_path / "out" / "last.pt").exists()

    # A folder that does not exist at all.
    panel.set_dataset("tiny-imagenet", tmp_path / "missing")
    with qtbot.waitSignal(panel.job_ended, timeout=30_000) as ended:
        panel.start()
    assert ended.args[0] == "failed" and "missing" in panel.error_label.text()
    assert panel.start_button.isEnabled()


def test_tiny_imagenet_folder_loads_on_the_worker(panel, qtbot, tmp_path, tiny_imagenet_10):
    panel.set_dataset("tiny-imagenet", tiny_imagenet_10)
    panel.classes_spin.setValue(2)
    panel.train_per_class_spin.setValue(4)
    panel.epochs_spin.setValue(1)
    panel.batch_spin.setValue(8)
    panel.device_combo.setCurrentText("cpu")
    panel.set_output_dir(tmp_path / "tin")
    with qtbot.waitSignal(panel.finished, timeout=60_000) as done:
        panel.start()
    history = json.loads((tmp_path / "tin" / "history.json").read_text())
    x, y = panel.val_acc_curve.getData()
    np.testing.assert_allclose(y, [r["val_accuracy"] for r in history], rtol=0, atol=1e-12)
    assert load_checkpoint(done.args[0]).config.num_classes == 2
    assert "loaded 8 training" in panel.log_view.toPlainText()

    # The same kind on a folder that is not Tiny ImageNet names the problem.
    other = tmp_path / "plain"
    other.mkdir()
    panel.set_dataset("tiny-imagenet", other)
    with qtbot.waitSignal(panel.job_ended, timeout=30_000) as ended:
        panel.start()
    assert ended.args[0] == "failed" and "wnids" in panel.error_label.text()


def test_image_folder_trains(panel, qtbot, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(
                root / name / f"{i}.png"
            )
    panel.set_dataset("folder", root)
    assert not panel.classes_spin.isEnabled()
    panel.epochs_spin.setValue(1)
    panel.batch_spin.setValue(8)
    panel.device_combo.setCurrentText("cpu")
    panel.set_output_dir(tmp_path / "out")
    with qtbot.waitSignal(panel.finished, timeout=60_000) as done:
        panel.start()
    ckpt = load_checkpoint(done.args[0])
    assert ckpt.class_names == ["cats", "dogs"] and ckpt.config.image_size == 64


def test_invalid_config_is_a_message_not_a_job(panel):
    panel.hidden_spin.setValue(10)
    panel.heads_spin.setValue(4)  # 10 is not divisible by 4
    panel.set_output_dir("/tmp/never-used")
    assert panel.start() is False
    assert "divisible" in panel.error_label.text()
    assert not panel.is_running() and panel.start_button.isEnabled()


def test_existing_run_is_refused_without_overwrite(panel, qtbot, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "history.json").write_text("[]")
    configure_training(panel, out, epochs=1, train_per_class=1)
    with qtbot.waitSignal(panel.job_ended, timeout=30_000) as ended:
        panel.start()
    assert ended.args[0] == "failed" and "overwrite" in panel.error_label.text()
    assert (out / "history.json").read_text() == "[]"


def test_format_eta():
    assert format_eta(0) == "0:00"
    assert format_eta(61) == "1:01"
    assert format_eta(3 * 3600 + 5) == "3:00:05"
    assert format_eta(math.nan) == "--:--"
