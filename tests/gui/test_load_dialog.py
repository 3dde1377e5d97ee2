"""The load dialog and the window's use of it: asking for what a file cannot tell, Save Model As.

The user's answer to the modal dialog is given by replacing its ``exec`` with a function that
fills the widgets and presses Open (what a user would do); references come from the core,
opened independently of the window. Every wait is on a signal, never a fixed sleep.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")

from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QDialog, QDialogButtonBox  # noqa: E402

from inspector.core.checkpoint import load_checkpoint  # noqa: E402
from inspector.core.explain import capture_image, load_image, open_model  # noqa: E402
from inspector.core.load_options import LoadOptions  # noqa: E402
from inspector.core.saliency import compute_map  # noqa: E402
from inspector.gui.load_dialog import LoadOptionsDialog  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core" / "interop"))
from test_interop_paper import paper_state_dict  # noqa: E402


@pytest.fixture
def paper_file(tmp_path) -> Path:
    """The paper's layout under a name outside its convention: the heads are unknown."""
    path = tmp_path / "authors_model.pth"
    sd = paper_state_dict(8, 2, True, "learned", seed=11)
    with torch.no_grad():  # sharper attention, so the map is not flat
        for i in range(2):
            sd[f"transformer_blocks.{i}.mhsa.q_mapping.weight"] *= 4
    torch.save(sd, path)
    return path


def _answer(record: list, heads: int | None = None, accept: bool = True):
    """A user at the dialog: notes what was shown, types the heads, presses Open/Cancel."""

    def exec_(self) -> int:
        record.append(
            {
                "reason": self.reason_label.text(),
                "heads": self.heads_spin.value(),
                "normalisation": self.normalisation_combo.currentData(),
                "path": self.path_label.text(),
            }
        )
        if heads is not None:
            self.heads_spin.setValue(heads)
        if accept:
            self.accept()
        else:
            self.reject()
        return self.result()

    return exec_


def test_dialog_widgets_map_to_options(qtbot, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n")
    initial = LoadOptions(
        heads=6,
        normalisation="imagenet",
        policy="resize_crop",
        image_size=224,
        residual=False,
        class_names_file=names,
    )
    dialog = LoadOptionsDialog(None, path=tmp_path / "x.pth", initial=initial, reason="why")
    qtbot.addWidget(dialog)
    assert dialog.options() == initial  # pre-filled exactly
    dialog.heads_spin.setValue(0)
    dialog.normalisation_combo.setCurrentIndex(dialog.normalisation_combo.findData("half"))
    dialog.policy_combo.setCurrentIndex(dialog.policy_combo.findData("auto"))
    dialog.size_spin.setValue(0)
    dialog.residual_combo.setCurrentIndex(0)
    dialog.names_edit.setText("")
    assert dialog.options() == LoadOptions(normalisation="half")


def test_dialog_stays_open_on_a_bad_class_names_file(qtbot, tmp_path):
    dialog = LoadOptionsDialog(None)
    qtbot.addWidget(dialog)
    dialog.names_edit.setText(str(tmp_path / "missing.txt"))
    dialog.accept()
    assert dialog.result() != QDialog.DialogCode.Accepted
    assert not dialog.error_label.isHidden() and "does not exist" in dialog.error_label.text()
    (tmp_path / "missing.txt").write_text("a\n")
    dialog.accept()
    assert dialog.result() == QDialog.DialogCode.Accepted


def test_ask_runs_the_real_modal_dialog(qtbot):
    seen: list = []

    def user() -> None:  # runs inside the dialog's own event loop
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, LoadOptionsDialog):
            QTimer.singleShot(5, user)  # not shown yet: look again on a later turn
            return
        seen.append(dialog.reason_label.text())
        dialog.heads_spin.setValue(3)
        dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok).click()

    QTimer.singleShot(0, user)
    answer = LoadOptionsDialog.ask(
        None, initial=LoadOptions(normalisation="none"), reason="heads unknown"
    )
    assert seen == ["heads unknown"]
    assert answer == LoadOptions(heads=3, normalisation="none")


def test_unknown_heads_are_asked_then_the_map_is_shown(
    qtbot, window, files, paper_file, monkeypatch
):
    record: list = []
    monkeypatch.setattr(LoadOptionsDialog, "exec", _answer(record, heads=4))
    with qtbot.waitSignal(window.captureReady, timeout=20_000):
        window.open_checkpoint(paper_file, LoadOptions(normalisation="half"))
        window.open_image(files["img0"])
    assert window.wait_until_idle(20_000)
    # Asked once, about this file, with the importer's reason and the earlier answers kept.
    assert len(record) == 1
    assert record[0]["path"] == paper_file.name and "heads" in record[0]["reason"]
    assert record[0]["normalisation"] == "half" and record[0]["heads"] == 0
    ckpt = window.loaded.checkpoint
    assert ckpt.config.num_heads == 4 and ckpt.preprocess.mean == (0.5, 0.5, 0.5)
    # The map shown is the core's for the same answers.
    ref = open_model(paper_file, options=LoadOptions(heads=4, normalisation="half"))
    cap = capture_image(ref, load_image(files["img0"], ref))
    expected = compute_map(cap, settings=window.current_settings().map)
    np.testing.assert_allclose(window.last_render.grid, expected, atol=1e-6)
    assert expected.max() > expected.min()  # not flat: the comparison can fail
    assert window.image_view.displayed() is not None


def test_cancelling_the_question_is_a_message(qtbot, window, paper_file, monkeypatch):
    record: list = []
    monkeypatch.setattr(LoadOptionsDialog, "exec", _answer(record, accept=False))
    with qtbot.waitSignal(window.errorShown, timeout=20_000) as sig:
        window.open_checkpoint(paper_file)
    assert len(record) == 1 and "--heads" in sig.args[0]
    assert window.loaded is None


def test_save_model_as_keeps_weights_and_options(qtbot, window, paper_file, tmp_path, monkeypatch):
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"n{i}" for i in range(10)))
    options = LoadOptions(heads=4, class_names_file=names, policy="resize_crop")
    with qtbot.waitSignal(window.modelLoaded, timeout=20_000):
        window.open_checkpoint(paper_file, options)
    out = tmp_path / "saved.pt"
    assert window.save_model_as(out) == out
    saved = load_checkpoint(out)
    ours = window.loaded.checkpoint
    assert saved.config == ours.config
    assert saved.state_dict.keys() == ours.state_dict.keys()
    assert all(torch.equal(saved.state_dict[k], v.cpu()) for k, v in ours.state_dict.items())
    assert saved.class_names == [f"n{i}" for i in range(10)]
    assert saved.preprocess == ours.preprocess and saved.preprocess.policy == "resize_crop"
    assert saved.provenance["imported_from"] == "paper"
    assert saved.provenance["load_options"]["heads"] == 4
    # An existing file is not replaced without the dialog's confirmation (overwrite=True).
    before = out.read_bytes()
    with qtbot.waitSignal(window.errorShown, timeout=5000) as sig:
        assert window.save_model_as(out) is None
    assert "exists" in sig.args[0] and out.read_bytes() == before
    with qtbot.waitSignal(window.errorShown, timeout=5000):
        assert window.save_model_as(tmp_path / "no_such_folder" / "m.pt") is None
    assert window.save_model_as(out, overwrite=True) == out


def test_broken_file_is_a_message_and_the_model_stays(qtbot, window, files, tmp_path, monkeypatch):
    def never(self) -> int:
        raise AssertionError("the dialog must not be asked for a broken file")

    monkeypatch.setattr(LoadOptionsDialog, "exec", never)
    with qtbot.waitSignal(window.modelLoaded, timeout=20_000):
        window.open_checkpoint(files["ckpt"])
    loaded = window.loaded
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"\x00 definitely not a checkpoint")
    with qtbot.waitSignal(window.errorShown, timeout=20_000) as sig:
        window.open_checkpoint(broken)
    assert "broken.pt" in sig.args[0] and "Traceback" not in sig.args[0]
    assert window.loaded is loaded
    with qtbot.waitSignal(window.errorShown, timeout=5000):
        window.open_checkpoint(files["ckpt"], LoadOptions(heads=7))  # contradicts the file
    assert window.wait_until_idle(10_000)
    assert window.loaded is loaded
