"""Evaluating one finished run of a study on the test split, cached per checkpoint and settings."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from ..checkpoint import load_checkpoint
from ..classification import classification_metrics
from ..data.types import ImageDataset
from ..evaluation import evaluate_saliency
from ..explain import from_checkpoint
from ..export import save_json
from ..train import (
    HISTORY,
    LAST,
    predict_probs,
    resolve_device,
)
from .spec import EVAL_FILE, StudySpec


def _history(folder: Path) -> list[dict[str, Any]]:
    try:
        return json.loads((folder / HISTORY).read_text())
    except (OSError, ValueError):
        return []


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def evaluate_run(folder: Path, test: ImageDataset, spec: StudySpec) -> dict[str, Any]:
    """Score ``folder/last.pt`` on the test split: the paper's columns plus the confusion.

    Classification metrics come from :func:`classification_metrics` on the model's
    probabilities; SMM (``|S ∩ M| / |S ∪ M|`` with ``S`` the map pixels above the threshold)
    is averaged over the test images where it is defined (via :func:`evaluate_saliency`).
    """
    started = time.perf_counter()
    ckpt = load_checkpoint(folder / LAST)
    loaded = from_checkpoint(ckpt, device=resolve_device(spec.device))
    probs, _ = predict_probs(loaded.model, test.images, ckpt.preprocess)  # (N, C)
    metrics = classification_metrics(test.labels.numpy(), probs.numpy(), test.num_classes)
    last = ckpt.history[-1] if ckpt.history else {}
    result: dict[str, Any] = {
        "epochs_trained": int(ckpt.provenance.get("epoch", len(ckpt.history))),
        "train_acc": last.get("train_acc"),
        "train_loss": last.get("train_loss"),
        **{
            k: metrics[k] for k in ("accuracy", "precision", "recall", "f1", "roc_auc", "confusion")
        },
        "test_images": len(test),
        "train_seconds": float(sum(r.get("seconds", 0.0) for r in ckpt.history)),
        "smm": None,
        "smm_std": None,
        "smm_defined": 0,
        "smm_per_image": None,
    }
    if test.masks is not None:
        ev = evaluate_saliency(
            loaded,
            test,
            [spec.method],
            spec.map_settings(),
            smoothing=spec.smoothing,
            threshold=spec.threshold,
        )  # type: ignore[arg-type]
        stat = ev.summary["methods"][spec.method]["smm"]
        result.update(
            smm=stat["mean"],
            smm_std=stat["std"],
            smm_defined=stat["defined"],
            smm_per_image=[r.get(f"{spec.method}/smm") for r in ev.rows],
        )
    result["eval_seconds"] = time.perf_counter() - started
    return result


def _cached_eval(folder: Path, test: ImageDataset, spec: StudySpec) -> dict[str, Any]:
    key_dict = {
        **spec.eval_settings(),
        "checkpoint_sha256": _sha256(folder / LAST),
        "test_ids": hashlib.sha256("\n".join(test.ids).encode()).hexdigest(),
    }
    key = json.dumps(key_dict, sort_keys=True)
    try:
        entries = json.loads((folder / EVAL_FILE).read_text()).get("entries", {})
    except (OSError, ValueError):
        entries = {}
    if key in entries:
        return entries[key]
    result = {**evaluate_run(folder, test, spec), "settings": key_dict}
    # Older entries of another checkpoint can never match again: keep only this one's.
    entries = {
        k: v
        for k, v in entries.items()
        if v.get("settings", {}).get("checkpoint_sha256") == key_dict["checkpoint_sha256"]
    }
    entries[key] = result
    save_json(folder / EVAL_FILE, {"entries": entries}, overwrite=True)
    return json.loads(json.dumps(entries[key]))  # what a later cache hit returns (NaN -> None)
