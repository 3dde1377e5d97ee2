"""Classification metrics for the training loop and the ablation tables (scikit-learn based).

The paper (docs/ARCHITECTURE.md section 5) reports per model: accuracy, macro recall, macro
precision, macro F1, one-vs-rest ROC AUC and the confusion matrix. All of them are computed
here with scikit-learn so that the numbers match what a reader would get from the usual tools.
"""

from __future__ import annotations

import warnings

import numpy as np

# scikit-learn (~1.3 s with scipy.stats) is imported on first use, inside the functions: the
# desktop app imports the training code to build its panels and must not pay it at start-up.

__all__ = ["ClassificationMetricsError", "classification_metrics"]


class ClassificationMetricsError(ValueError):
    """Labels or probabilities have the wrong shape, type or values."""


def _check(
    labels: np.ndarray, probs: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ClassificationMetricsError(f"num_classes must be an int >= 2, got {num_classes!r}")
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    if labels.ndim != 1:
        raise ClassificationMetricsError(f"labels must be 1-D (N,), got shape {labels.shape}")
    if labels.size == 0:
        raise ClassificationMetricsError("labels is empty: no samples to score")
    if not np.issubdtype(labels.dtype, np.integer):
        if np.issubdtype(labels.dtype, np.floating) and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise ClassificationMetricsError(f"labels must be integers, got dtype {labels.dtype}")
    if probs.shape != (labels.shape[0], num_classes):
        raise ClassificationMetricsError(
            f"probs must have shape (N, C) = ({labels.shape[0]}, {num_classes}), got {probs.shape}"
        )
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ClassificationMetricsError(
            f"labels must lie in [0, {num_classes - 1}], got range [{labels.min()}, {labels.max()}]"
        )
    if not np.all(np.isfinite(probs)):
        raise ClassificationMetricsError("probs contains NaN or infinite values")
    if np.any(probs < 0):
        raise ClassificationMetricsError("probs must be non-negative (probabilities, not logits)")
    return labels.astype(np.int64), probs


def _roc_auc(labels: np.ndarray, probs: np.ndarray) -> float | None:
    """Macro one-vs-rest ROC AUC over the classes present in ``labels``.

    Each present class c contributes ``AUC(labels == c, probs[:, c])``; the score is their
    unweighted mean (sklearn's ``multi_class="ovr", average="macro"`` when every class is present).
    A class absent from ``labels`` has no positives, so its AUC is undefined and it is skipped
    (sklearn itself would raise). Rows of ``probs`` are renormalised to sum to 1 first (softmax
    outputs in float32 drift by ~1e-7; AUC is rank-based per column, so renormalising rows can
    change ranks only when row sums differ, which is what callers expect to be neutralised).
    Fewer than two present classes -> None (no negatives for the single class).
    """
    row_sums = probs.sum(axis=1, keepdims=True)
    # A row of zeros carries no information: make it uniform instead of dividing by zero.
    safe = np.where(row_sums > 0, row_sums, 1.0)
    norm = np.where(row_sums > 0, probs / safe, 1.0 / probs.shape[1])
    present = np.unique(labels)
    if present.size < 2:
        return None
    from sklearn.metrics import roc_auc_score

    aucs = [roc_auc_score(labels == c, norm[:, c]) for c in present]
    return float(np.mean(aucs))


def classification_metrics(labels: np.ndarray, probs: np.ndarray, num_classes: int) -> dict:
    """Accuracy, macro precision / recall / F1, one-vs-rest macro ROC AUC and the confusion matrix.

    Definitions (per class c, with TP/FP/FN counted from ``argmax(probs)`` as the prediction):
    ``precision_c = TP / (TP + FP)``, ``recall_c = TP / (TP + FN)``,
    ``F1_c = 2 P R / (P + R)``, each 0 when its denominator is 0 (``zero_division=0``); the macro
    value is the unweighted mean over all ``num_classes`` classes (also those never seen, as
    sklearn does with ``labels=range(C)``). ROC AUC: see :func:`_roc_auc`.

    Args:
        labels: ``(N,)`` int true classes in ``[0, num_classes)``.
        probs: ``(N, C)`` class probabilities (non-negative; rows need not sum exactly to 1).
        num_classes: C.

    Returns:
        dict with ``accuracy``, ``precision``, ``recall``, ``f1`` (floats), ``roc_auc``
        (float, or None when fewer than two classes occur in ``labels``) and ``confusion``
        (C x C list of int lists, rows = true class, columns = predicted class).

    Raises:
        ClassificationMetricsError: bad shapes, labels out of range, negative or non-finite probs.
    """
    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels, probs = _check(labels, probs, int(num_classes))
    classes = list(range(int(num_classes)))
    preds = probs.argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        precision, recall, f1, _ = precision_recall_fscore_support(
            labels, preds, labels=classes, average="macro", zero_division=0
        )
    confusion = confusion_matrix(labels, preds, labels=classes)
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "roc_auc": _roc_auc(labels, probs),
        "confusion": [[int(v) for v in row] for row in confusion],
    }
