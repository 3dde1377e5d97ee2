"""Where the repository keeps what the app opens by default: no GUI import needed.

The default checkpoint, the sample images and the shipped study models live beside the package
(``checkpoints/``, ``resources/samples/``); the CLI, the GUI and the scripts all read them here.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT = REPO_ROOT / "checkpoints" / "synthetic-baseline.pt"
SAMPLES = REPO_ROOT / "resources" / "samples"
# The ablation study's Tiny ImageNet-10 models (docs/REPRODUCTION.md), one file per preset.
STUDY_CHECKPOINTS = REPO_ROOT / "checkpoints" / "tiny-imagenet-10"
# Where new training runs go unless the user picks another folder.
RUNS = REPO_ROOT / "runs"


def study_checkpoints(folder: Path = STUDY_CHECKPOINTS) -> list[Path]:
    """The shipped study models in the paper's table order (then any others by name)."""
    from inspector.core.config import PRESETS

    files = {p.stem: p for p in folder.glob("*.pt")} if folder.is_dir() else {}
    ordered = [files.pop(name) for name in PRESETS if name in files]
    return ordered + [files[k] for k in sorted(files)]


def default_image() -> Path | None:
    """The first shipped sample image (not its mask), if any."""
    if not SAMPLES.is_dir():
        return None
    images = sorted(p for p in SAMPLES.glob("*.png") if not p.stem.endswith("_mask"))
    return images[0] if images else None
