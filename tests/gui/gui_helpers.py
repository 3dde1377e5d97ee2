"""Helpers shared by the GUI tests (not fixtures)."""

from __future__ import annotations

CLASSES = [f"shape{i}" for i in range(10)]


def loaded(qtbot, window, files, image: str = "img0"):
    """Open the tiny checkpoint and an image in ``window`` and wait until all is drawn."""
    with qtbot.waitSignal(window.captureReady, timeout=20_000):
        window.open_checkpoint(files["ckpt"])
        window.open_image(files[image])
    assert window.wait_until_idle(20_000)
    return window


def configure_training(
    panel, out, *, epochs: int, train_per_class: int = 2, batch: int = 8
) -> None:
    """A tiny, fast synthetic training job in the training panel, as a user would set it."""
    panel.set_dataset("synthetic")
    panel.classes_spin.setValue(3)
    panel.train_per_class_spin.setValue(train_per_class)
    panel.val_per_class_spin.setValue(2)
    panel.epochs_spin.setValue(epochs)
    panel.batch_spin.setValue(batch)
    panel.lr_spin.setValue(0.001)
    panel.device_combo.setCurrentText("cpu")
    panel.set_output_dir(out)
