"""Classification metrics against a 3-class example worked out by hand, plus invariants."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.core.classification import ClassificationMetricsError, classification_metrics

# Hand-built case. Predictions (argmax) are 0, 0, 1, 1, 1, 0 against labels 0, 0, 0, 1, 1, 2.
LABELS = np.array([0, 0, 0, 1, 1, 2])
PROBS = np.array(
    [
        [0.8, 0.1, 0.1],
        [0.6, 0.3, 0.1],
        [0.3, 0.5, 0.2],
        [0.2, 0.7, 0.1],
        [0.1, 0.6, 0.3],
        [0.5, 0.2, 0.3],
    ]
)
# Worked by hand:
# confusion rows = true: [[2, 1, 0], [0, 2, 0], [1, 0, 0]]; accuracy 4/6.
# class 0: TP 2, FP 1, FN 1 -> P 2/3, R 2/3, F1 2/3
# class 1: TP 2, FP 1, FN 0 -> P 2/3, R 1,   F1 4/5
# class 2: TP 0, FP 0, FN 1 -> P 0 (zero_division), R 0, F1 0
# macro P = 4/9, R = 5/9, F1 = (2/3 + 4/5) / 3 = 22/45
# AUC class 0: positives {.8,.6,.3} vs negatives {.2,.1,.5}: 8 of 9 pairs -> 8/9
# AUC class 1: positives {.7,.6} vs {.1,.3,.5,.2}: 8 of 8 -> 1
# AUC class 2: positive {.3} vs {.1,.1,.2,.1,.3}: 4 wins + 1 tie (0.5) -> 4.5/5 = 0.9
# macro AUC = (8/9 + 1 + 0.9) / 3 = 251/270
EXPECTED = {
    "accuracy": 4 / 6,
    "precision": 4 / 9,
    "recall": 5 / 9,
    "f1": 22 / 45,
    "roc_auc": 251 / 270,
    "confusion": [[2, 1, 0], [0, 2, 0], [1, 0, 0]],
}


def test_hand_computed_three_class_case():
    m = classification_metrics(LABELS, PROBS, 3)
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert m[key] == pytest.approx(EXPECTED[key], abs=1e-12), key
    assert m["confusion"] == EXPECTED["confusion"]
    assert all(type(v) is int for row in m["confusion"] for v in row)


def test_absent_class_auc_over_present_classes():
    # A fourth class that never occurs and always gets probability 0: the AUC is the mean over the
    # three present classes; macro precision / recall / F1 average over all four classes.
    probs = np.concatenate([PROBS, np.zeros((6, 1))], axis=1)
    m = classification_metrics(LABELS, probs, 4)
    assert m["roc_auc"] == pytest.approx(251 / 270, abs=1e-12)
    assert m["precision"] == pytest.approx(4 / 9 * 3 / 4, abs=1e-12)
    assert m["recall"] == pytest.approx(5 / 9 * 3 / 4, abs=1e-12)
    assert np.array(m["confusion"]).shape == (4, 4)


def test_single_present_class_gives_none_auc():
    labels = np.array([1, 1, 1])
    probs = np.array([[0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    m = classification_metrics(labels, probs, 2)
    assert m["roc_auc"] is None
    assert m["accuracy"] == pytest.approx(2 / 3)


def test_rows_not_summing_to_one_are_renormalised():
    scale = np.array([2.0, 0.5, 3.0, 1.0, 10.0, 0.25])[:, None]
    m = classification_metrics(LABELS, PROBS * scale, 3)
    assert m["roc_auc"] == pytest.approx(251 / 270, abs=1e-12)
    assert m["accuracy"] == pytest.approx(4 / 6)


def test_invariants_on_random_data():
    rng = np.random.default_rng(0)
    n, c = 200, 5
    labels = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) + 2.0 * np.eye(c)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = classification_metrics(labels, probs.astype(np.float32), c)
    conf = np.array(m["confusion"])
    assert conf.sum() == n
    np.testing.assert_array_equal(conf.sum(1), np.bincount(labels, minlength=c))
    assert m["accuracy"] == pytest.approx(np.trace(conf) / n)
    # Recall from the confusion matrix directly: diagonal over row sums.
    assert m["recall"] == pytest.approx(np.mean(np.diag(conf) / conf.sum(1)))
    assert 0.5 < m["roc_auc"] <= 1.0
    perfect = classification_metrics(labels, np.eye(c)[labels], c)
    assert perfect["accuracy"] == perfect["f1"] == perfect["roc_auc"] == 1.0


@pytest.mark.parametrize(
    "labels, probs, c, fragment",
    [
        (np.array([0, 1]), np.ones((2, 3)) / 3, 2, "shape"),
        (np.array([0, 5]), np.ones((2, 3)) / 3, 3, "range"),
        (np.array([0, 1]), np.array([[0.5, np.nan, 0.5], [1, 0, 0]]), 3, "NaN"),
        (np.array([0, 1]), np.array([[-1.0, 1, 1], [1, 0, 0]]), 3, "non-negative"),
        (np.array([], dtype=int), np.zeros((0, 3)), 3, "empty"),
        (np.array([0.5, 1.0]), np.ones((2, 3)) / 3, 3, "integers"),
    ],
)
def test_bad_input_raises_clear_error(labels, probs, c, fragment):
    with pytest.raises(ClassificationMetricsError, match=fragment):
        classification_metrics(labels, probs, c)
