"""The prompt field and list, used as a user would, on a small random Hugging Face CLIPModel
with a tokenizer saved in its folder: typed prompts give the zero-shot ranking and, for the
chosen prompt, the map of the core's prompts pipeline (``explain --prompt``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

pytest.importorskip("pytestqt")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from test_prompts_hf import _config, save_tokenizer  # noqa: E402

from inspector.core.explain import open_model  # noqa: E402
from inspector.core.prompts import explain_prompts  # noqa: E402
from inspector.gui.predictions import PREDICTIONS_SHOWN  # noqa: E402

PROMPTS = ["a photo of a goldfish", "a photo of a dog", "a red car"]


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    cfg, cls = _config("clip")
    torch.manual_seed(0)
    model = cls(cfg).eval()
    with torch.no_grad():
        model.logit_scale.fill_(3.0)
    folder = tmp_path_factory.mktemp("hfclip")
    model.save_pretrained(folder)
    save_tokenizer(folder)
    return folder


def _type_prompt(qtbot, window, panel, text: str) -> None:
    with qtbot.waitSignal(window.captureReady, timeout=60_000):
        panel.edit.setFocus()
        qtbot.keyClicks(panel.edit, text)
        qtbot.keyClick(panel.edit, Qt.Key.Key_Return)
    assert window.wait_until_idle(60_000)


def test_typed_prompts_map_equals_the_core_prompts_pipeline(qtbot, window, files, clip_folder):
    panel = window.panels["prompts"]
    assert not panel.edit.isEnabled()  # no model yet: nothing to prompt
    with qtbot.waitSignal(window.captureReady, timeout=60_000):
        window.open_checkpoint(clip_folder)
        window.open_image(files["img1"])
    assert window.wait_until_idle(60_000)
    window.extra_docks["prompts"].raise_()
    assert panel.edit.isEnabled()
    for p in PROMPTS:
        _type_prompt(qtbot, window, panel, p)
    assert panel.prompts() == PROMPTS and window.loaded.class_names == PROMPTS
    # The last typed prompt is the target; choose the second one in the list instead.
    window.controls.set_method("relevance")
    rect = panel.list.visualItemRect(panel.list.item(1))
    qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.wait_until_idle(60_000)
    s = window.current_settings().map
    assert s.class_index == 1 and window.last_render.settings.map.class_index == 1
    # Reference: the core's prompts pipeline on an independently opened model.
    ref = open_model(clip_folder)
    res = explain_prompts(ref.checkpoint, window.image.tensor, PROMPTS, settings=s)
    np.testing.assert_allclose(window.last_render.grid, res.maps[PROMPTS[1]], atol=1e-5)
    assert not np.allclose(res.maps[PROMPTS[1]], res.maps[PROMPTS[0]], atol=1e-3)
    # The predictions are the zero-shot ranking over the prompts.
    shown = [(window.loaded.class_names[c], p) for c, p in window.capture.top_k(PREDICTIONS_SHOWN)]
    assert [n for n, _ in shown] == [n for n, _ in res.top]
    np.testing.assert_allclose([p for _, p in shown], [p for _, p in res.top], atol=1e-5)
    # Delete removes the selected prompt; Clear goes back to the model's own outputs.
    panel.list.setFocus()
    with qtbot.waitSignal(window.captureReady, timeout=60_000):
        qtbot.keyClick(panel.list, Qt.Key.Key_Delete)
    assert window.wait_until_idle(60_000)
    assert window.loaded.class_names == [PROMPTS[0], PROMPTS[2]]
    with qtbot.waitSignal(window.captureReady, timeout=60_000):
        qtbot.mouseClick(panel.clear_button, Qt.MouseButton.LeftButton)
    assert window.wait_until_idle(60_000)
    assert window.loaded is window.prompts_controller.base
    assert window.loaded.class_names[0] == "embedding_0"


def test_a_model_without_a_text_tower_disables_the_field(qtbot, window, files):
    with qtbot.waitSignal(window.captureReady, timeout=30_000):
        window.open_checkpoint(files["ckpt"])
        window.open_image(files["img0"])
    assert window.wait_until_idle(30_000)
    panel = window.panels["prompts"]
    assert not panel.edit.isEnabled() and "text tower" in panel.note.text()
