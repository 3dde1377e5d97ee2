"""Regenerate the shipped default checkpoint and the sample images.

    python scripts/make_default_checkpoint.py [--epochs 30] [--preset baseline]

Trains a paper preset on the synthetic dataset with our own training loop and writes
``checkpoints/synthetic-<preset>.pt`` (the best validation epoch) plus a handful of test-split
images with their exact masks into ``resources/samples/`` (``<name>.png`` and
``<name>_mask.png``). Prints the validation and test accuracy that the README quotes.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from inspector.core.atomic import atomic_path  # noqa: E402
from inspector.core.checkpoint import load_checkpoint  # noqa: E402
from inspector.core.config import TrainConfig, preset  # noqa: E402
from inspector.core.data import make_synthetic  # noqa: E402
from inspector.core.train import evaluate, train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="baseline")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=8)
    args = parser.parse_args()

    data = make_synthetic(seed=args.seed)
    cfg = preset(args.preset)
    with tempfile.TemporaryDirectory() as tmp:
        result = train(
            cfg,
            TrainConfig(epochs=args.epochs, seed=args.seed, device="cpu"),
            data,
            tmp,
            provenance={"preset": args.preset, "script": "scripts/make_default_checkpoint.py"},
            callback=lambda e: (
                print(f"epoch {e.epoch}: val acc {e.metrics['val_accuracy']:.3f}")
                if hasattr(e, "metrics")
                else None
            ),
        )
        dest = REPO / "checkpoints" / f"synthetic-{args.preset}.pt"
        dest.parent.mkdir(exist_ok=True)
        # Regenerating replaces the shipped file on purpose, atomically (the app may be open).
        with atomic_path(dest, overwrite=True) as tmp_dest:
            shutil.copyfile(result.best_path, tmp_dest)
    ckpt = load_checkpoint(dest)
    model = ckpt.build_model()
    best = max(ckpt.history, key=lambda r: r["val_accuracy"])
    test = evaluate(model, data.test, ckpt.preprocess)
    print(
        f"{dest.relative_to(REPO)}: best epoch {best['epoch']}, val accuracy "
        f"{best['val_accuracy']:.3f}, test accuracy {test['accuracy']:.3f}"
    )

    samples = REPO / "resources" / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    for old in samples.glob("*.png"):
        old.unlink()
    rng = np.random.default_rng(args.seed)
    per_class = {}
    for i in rng.permutation(len(data.test)).tolist():
        label = int(data.test.labels[i])
        if label in per_class or len(per_class) >= args.samples:
            continue
        per_class[label] = i
        name = data.class_names[label].replace(" ", "_")
        Image.fromarray(data.test.images[i].permute(1, 2, 0).numpy()).save(samples / f"{name}.png")
        Image.fromarray(data.test.masks[i].numpy().astype(np.uint8) * 255).save(
            samples / f"{name}_mask.png"
        )
    print(f"wrote {len(per_class)} samples to {samples.relative_to(REPO)}")


if __name__ == "__main__":
    main()
