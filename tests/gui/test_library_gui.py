"""Library models in the window, as a user opens them: the architecture typed in the load
dialog (the CLI's ``--arch``), checked against timm's own forward of the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")
timm = pytest.importorskip("timm")

from inspector.core.explain import capture_image, load_image, open_model  # noqa: E402
from inspector.core.load_options import LoadOptions  # noqa: E402
from inspector.core.saliency import compute_map  # noqa: E402
from inspector.gui.load_dialog import LoadOptionsDialog  # noqa: E402

ARCH = "vit_base_patch16_clip_quickgelu_224"
SMALL = {"depth": 2, "embed_dim": 192, "num_heads": 3, "num_classes": 10}


@pytest.fixture(scope="module")
def quickgelu_file(tmp_path_factory):
    """A CLIP image tower with QuickGELU: its keys are those of the GELU one, so only the
    architecture's name tells them apart."""
    torch.manual_seed(0)
    model = timm.create_model(ARCH, pretrained=False, **SMALL).eval()
    path = tmp_path_factory.mktemp("quickgelu") / "clip_quickgelu.pth"
    torch.save(model.state_dict(), path)
    return path, model


def _type_arch(record: list, arch: str):
    """A user at the dialog: types the architecture into its field and presses Open."""

    def exec_(self) -> int:
        record.append(self.arch_combo.currentText())
        self.arch_combo.setCurrentText(arch)
        self.accept()
        return self.result()

    return exec_


def test_dialog_arch_field_maps_to_the_option(qtbot):
    dialog = LoadOptionsDialog(None, initial=LoadOptions(arch="open_clip:ViT-B-32"))
    qtbot.addWidget(dialog)
    assert dialog.options() == LoadOptions(arch="open_clip:ViT-B-32")
    dialog.arch_combo.setCurrentText("  ")
    assert dialog.options().arch is None  # empty: inferred from the weights
    qtbot.keyClicks(dialog.arch_combo.lineEdit(), ARCH)
    assert dialog.options() == LoadOptions(arch=ARCH)


def test_arch_chosen_in_the_dialog_opens_timm_weights_faithfully(
    qtbot, window, files, quickgelu_file, monkeypatch
):
    path, ref = quickgelu_file
    record: list = []
    monkeypatch.setattr(LoadOptionsDialog, "exec", _type_arch(record, ARCH))
    options = window.ask_load_options(path, None)
    assert record == [""] and options == LoadOptions(arch=ARCH)
    with qtbot.waitSignal(window.captureReady, timeout=60_000):
        window.open_checkpoint(path, options)
        window.open_image(files["img0"])
    assert window.wait_until_idle(60_000)
    assert window.loaded.checkpoint.config.arch == ARCH
    # Predictions shown = timm's own forward of the same weights on the same input.
    with torch.no_grad():
        expected = ref(window.image.tensor).softmax(-1)[0]
    got = window.capture.probabilities
    assert torch.allclose(got, expected, atol=1e-4)
    # Inferred without the name, the GELU template gives other outputs: the field matters.
    inferred = open_model(path)
    cap_inferred = capture_image(inferred, load_image(files["img0"], inferred))
    assert not torch.allclose(cap_inferred.probabilities, expected, atol=1e-4)
    # The map shown is the core's for the same options.
    ref_loaded = open_model(path, options=LoadOptions(arch=ARCH))
    cap = capture_image(ref_loaded, load_image(files["img0"], ref_loaded))
    np.testing.assert_allclose(
        window.last_render.grid, compute_map(cap, settings=window.current_settings().map), atol=1e-6
    )
