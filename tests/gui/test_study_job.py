"""The ablation study as a job of the training panel, end to end (tiny synthetic study).

A user checks two models, clicks Run Study and waits: the table must show the numbers of the
saved models (recomputed here independently from the written ``last.pt`` files and the
regenerated test split), and the main window must put every model in the compare view. Cancel
stops between steps without writing a report; running again resumes to the same numbers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")

from gui_helpers import configure_training, loaded  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from inspector.core.checkpoint import load_checkpoint  # noqa: E402
from inspector.core.study import load_study_data, run_dir  # noqa: E402
from inspector.gui.training_panel import TrainingPanel  # noqa: E402

MODELS = ["baseline", "heads-2"]


@pytest.fixture
def panel(qtbot):
    w = TrainingPanel()
    qtbot.addWidget(w)
    yield w
    w.request_stop_and_wait(30_000)


def configure_study(panel, out, *, epochs: int = 1, train_per_class: int = 2) -> None:
    configure_training(panel, out, epochs=epochs, train_per_class=train_per_class)
    panel.study_box.set_presets(MODELS)
    panel.study_box.seeds_spin.setValue(1)
    panel.study_box.jobs_spin.setValue(1)  # worker processes are covered by the core tests


def direct_accuracy(spec, out, name: str) -> float:
    """Test accuracy of a saved study model, recomputed without the study code."""
    test = load_study_data(spec).test
    ckpt = load_checkpoint(run_dir(out, name, 0) / "last.pt")
    model = ckpt.build_model().eval()
    mean = torch.tensor(ckpt.preprocess.mean).view(1, 3, 1, 1)
    std = torch.tensor(ckpt.preprocess.std).view(1, 3, 1, 1)
    x = (test.images.float() / 255.0 - mean) / std
    with torch.no_grad():
        pred = model(x).argmax(1)
    return float((pred == test.labels).double().mean())


def test_study_job_fills_the_table_with_the_saved_models_numbers(panel, qtbot, tmp_path):
    out = tmp_path / "study"
    configure_study(panel, out)
    with qtbot.waitSignal(panel.study_finished, timeout=180_000) as sig:
        qtbot.mouseClick(panel.study_box.run_button, Qt.MouseButton.LeftButton)
    paths = sig.args[0]
    assert paths == [str(run_dir(out, m, 0) / "last.pt") for m in MODELS]
    assert panel.progress.value() == 1000 and panel.progress.format() == "finished"
    assert panel.study_table.isVisible() or not panel.isVisible()
    table = panel.study_table
    assert table.rowCount() == 2
    spec = panel.study_spec()
    report = json.loads((out / "report.json").read_text())
    for r, name in enumerate(MODELS):
        assert table.cell_text(r, "model") == name
        acc = direct_accuracy(spec, out, name)
        assert table.cell_text(r, "test acc") == f"{acc:.3f}"
        smm = report["rows"][r]["smm"]["mean"]
        assert table.cell_text(r, "SMM") == f"{smm:.3f}"
    assert (out / "report.md").is_file() and (out / "saliency.png").is_file()
    # The live curves: one per run, the values each run wrote to its history.json.
    curves = panel.study_curves()
    assert sorted(curves) == [(m, 0) for m in MODELS]
    for name in MODELS:
        history = json.loads((run_dir(out, name, 0) / "history.json").read_text())
        epochs, losses, accs = curves[(name, 0)]
        assert epochs == [row["epoch"] for row in history]
        assert losses == pytest.approx([row["train_loss"] for row in history])
        assert accs == pytest.approx([row["val_accuracy"] for row in history])
    assert panel.study_box.run_button.isEnabled() and panel.start_button.isEnabled()


def test_cancelled_study_writes_no_report_and_resumes(panel, qtbot, tmp_path):
    out = tmp_path / "study"
    configure_study(panel, out, epochs=6, train_per_class=30)
    assert panel.start_study()
    assert not panel.study_box.run_button.isEnabled()  # one job at a time
    qtbot.waitUntil(lambda: panel.progress.value() > 0, timeout=60_000)
    with qtbot.waitSignal(panel.job_ended, timeout=60_000) as sig:
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    assert sig.args[0] == "stopped"
    assert not (out / "report.md").exists()
    history_file = run_dir(out, "baseline", 0) / "history.json"
    before = json.loads(history_file.read_text()) if history_file.exists() else []
    assert len(before) < 6
    # Run again: the saved epochs are kept (not retrained) and the study completes.
    with qtbot.waitSignal(panel.study_finished, timeout=180_000):
        assert panel.start_study()
    after = json.loads(history_file.read_text())
    assert [row["epoch"] for row in after] == list(range(1, 7))
    assert after[: len(before)] == before
    assert panel.study_table.rowCount() == 2 and (out / "report.md").is_file()


def test_bad_study_settings_are_messages_not_jobs(panel, qtbot, tmp_path):
    configure_study(panel, tmp_path / "s")
    panel.study_box.set_presets([])
    assert not panel.start_study()
    assert "check at least one model" in panel.error_label.text()
    panel.study_box.set_presets(MODELS)
    panel.set_dataset("folder", tmp_path)
    assert not panel.start_study()
    assert "synthetic data or a Tiny ImageNet folder" in panel.error_label.text()
    panel.set_dataset("tiny-imagenet", tmp_path / "missing")
    assert not panel.start_study()
    assert "does not exist" in panel.error_label.text()
    # A folder that is not Tiny ImageNet: the loader's message, from the worker.
    panel.set_dataset("tiny-imagenet", tmp_path)
    with qtbot.waitSignal(panel.job_ended, timeout=60_000) as sig:
        assert panel.start_study()
    assert sig.args[0] == "failed"
    assert "wnids.txt" in panel.error_label.text()
    assert not panel.is_running()


def test_window_puts_the_study_models_in_the_compare_view(qtbot, window, files, tmp_path):
    loaded(qtbot, window, files)
    panel = window.panels["training"]
    out = tmp_path / "study"
    configure_study(panel, out)
    compare = window.panels["compare"]
    compare.add_model(files["ckpt"])  # replaced by the study's models
    with qtbot.waitSignal(panel.study_finished, timeout=180_000):
        assert panel.start_study()
    assert compare.models() == [str(run_dir(out, m, 0) / "last.pt") for m in MODELS]
    # Side by side needs room: the compare view is the central tab beside the image, shown.
    assert window.central_tabs.currentWidget() is compare and compare.isVisible()
    assert compare.wait_idle(60_000)
    titles = [c.title_text for c in compare.cells()]
    assert titles == ["baseline seed-0", "heads-2 seed-0"]
    # Every cell shows the model's own prediction on the open image.
    results = compare.results()
    assert all(r is not None and not r.error for r in results)
    probs = np.array([r.probability for r in results])
    assert np.all((probs > 0) & (probs <= 1))


def test_cell_titles_tell_generic_file_names_apart():
    from inspector.gui.compare_view import cell_title

    assert cell_title("/x/study/runs/no-residual/seed-2/last.pt") == "no-residual seed-2"
    assert cell_title("/x/runA/best.pt") == "runA/best.pt"
    assert cell_title("/x/checkpoints/tiny-imagenet-10/heads-8.pt") == "heads-8.pt"


def test_shipped_study_models_come_in_the_papers_order(tmp_path):
    from inspector.paths import STUDY_CHECKPOINTS, study_checkpoints

    for name in ("no-layernorm", "baseline", "heads-2", "zz-extra"):
        (tmp_path / f"{name}.pt").write_bytes(b"")
    (tmp_path / "seed-1").mkdir()
    (tmp_path / "seed-1" / "baseline.pt").write_bytes(b"")  # other seeds are not listed
    assert [p.name for p in study_checkpoints(tmp_path)] == [
        "baseline.pt",
        "heads-2.pt",
        "no-layernorm.pt",
        "zz-extra.pt",
    ]
    assert study_checkpoints(tmp_path / "missing") == []
    if STUDY_CHECKPOINTS.is_dir():  # the repository's own: one file per paper model
        from inspector.core.config import PRESETS

        assert [p.stem for p in study_checkpoints()] == list(PRESETS)
