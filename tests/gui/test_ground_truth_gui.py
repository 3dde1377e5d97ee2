"""An image opened from a Tiny ImageNet folder brings its box as the mask and its true label
(marked in the predictions); any class, not only the top 5, can be the target."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pytestqt")

from gui_helpers import CLASSES  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from inspector.core.explain import open_model  # noqa: E402
from inspector.core.preprocess import align_mask  # noqa: E402


def _tiny(root):
    """A two-class Tiny ImageNet of the real layout; the model's classes are named by the
    folder's words, so the true label is matched by name."""
    wnids = ["n0001", "n0002"]
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text(f"n0001\t{CLASSES[3]}, other\nn0002\t{CLASSES[7]}\n")
    rng = np.random.default_rng(0)
    for w in wnids:
        (root / "train" / w / "images").mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
            root / "train" / w / "images" / f"{w}_0.JPEG", format="JPEG"
        )
        (root / "train" / w / f"{w}_boxes.txt").write_text(f"{w}_0.JPEG\t5\t6\t30\t40\n")
    (root / "val" / "images").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        root / "val" / "images" / "val_0.JPEG", format="JPEG"
    )
    (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn0002\t10\t0\t63\t20\n")


@pytest.mark.parametrize(
    "rel,box,label",
    [
        ("train/n0001/images/n0001_0.JPEG", (5, 6, 30, 40), 3),
        ("val/images/val_0.JPEG", (10, 0, 63, 20), 7),
    ],
)
def test_dataset_image_brings_mask_and_true_label(qtbot, window, files, tmp_path, rel, box, label):
    _tiny(tmp_path)
    image = tmp_path / rel
    with qtbot.waitSignal(window.captureReady, timeout=20_000):
        window.open_checkpoint(files["ckpt"])
        window.open_image(image)
    assert window.wait_until_idle(20_000)
    x0, y0, x1, y1 = box
    ref = np.zeros((64, 64), bool)
    for y in range(y0, y1 + 1):
        for x in range(x0, x1 + 1):
            ref[y, x] = True
    model = open_model(files["ckpt"])
    expected = align_mask(ref, (64, 64), model.checkpoint.preprocess)
    assert window.mask is not None
    np.testing.assert_array_equal(window.mask, expected)
    panel = window.predictions
    assert panel.truth.isVisible() and CLASSES[label] in panel.truth.text()
    assert "✓ true" in panel.any_class.itemText(label + 1)
    meta = window.export_metadata()
    assert meta["mask"]["source"] == "dataset"
    assert meta["mask"]["path"].endswith(("_boxes.txt", "val_annotations.txt"))
    assert window.last_render.smm is not None


def test_any_class_can_be_the_target(qtbot, window, files):
    with qtbot.waitSignal(window.captureReady, timeout=20_000):
        window.open_checkpoint(files["ckpt"])
        window.open_image(files["img0"])
    assert window.wait_until_idle(20_000)
    window.controls.set_method("relevance")
    assert window.wait_until_idle(20_000)
    top5 = set(window.predictions.classes()[:5])  # the table lists the top 10
    outside = next(c for c in range(len(CLASSES)) if c not in top5)
    combo = window.predictions.any_class
    assert combo.count() == len(CLASSES) + 1
    combo.setFocus()
    for _ in range(outside + 1):  # the keyboard, as a user picks from the list
        qtbot.keyClick(combo, Qt.Key.Key_Down)
    assert combo.currentIndex() == outside + 1
    assert window.wait_until_idle(20_000)
    assert window.last_render.settings.map.class_index == outside
    assert window.last_render.explained.target_class == outside
    # Back to the predicted class from the list's first entry.
    qtbot.keyClick(combo, Qt.Key.Key_Home)
    assert window.wait_until_idle(20_000)
    assert window.last_render.settings.map.class_index is None
