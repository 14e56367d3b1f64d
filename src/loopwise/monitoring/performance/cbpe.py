"""The arithmetic of confidence-based performance estimation (CBPE), on NumPy arrays.

A calibrated probability is an expected label: a row predicted positive with P(y=1) = 0.9 adds
0.9 of a true positive and 0.1 of a false positive. Every metric here is written once over such
"soft" labels, so the same code gives the realised metric (one-hot labels) and the estimate
(calibrated probabilities). See docs/monitoring.md, "Performance without labels".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from loopwise.errors import require_extra

__all__ = [
    "METRICS",
    "Calibration",
    "expected_calibration_error",
    "fit_calibration",
    "metric_from_soft_labels",
    "one_hot",
    "sampling_error_unit",
]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

# Metrics a confusion matrix (or a ranking) of expected labels gives; binary precision, recall
# and F1 are for the positive class (the last of ``classes``), multiclass ones are macro averages.
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
CALIBRATION_BINS = 10  # equal-width bins of the expected calibration error
AUTO_SPLITS = 3  # random reference splits that decide calibration="auto"
AUTO_TEST_SHARE = 0.3


@dataclass(frozen=True)
class Calibration:
    """Per-class isotonic maps as knots (``np.interp`` between them, clipped at the ends, as
    scikit-learn's ``IsotonicRegression(out_of_bounds="clip")`` predicts); ``None`` where a
    class's scores are used as they are."""

    knots: tuple[tuple[Floats, Floats] | None, ...]

    @property
    def calibrated(self) -> bool:
        return any(k is not None for k in self.knots)

    def apply(self, scores: Floats) -> Floats:
        """Calibrated probabilities, shape like ``scores`` (rows x classes); rows sum to 1."""
        if not self.calibrated:
            return scores
        out = scores.copy()
        if scores.shape[1] == 2:  # binary: calibrate P(positive) and complement it
            knots = self.knots[1]
            if knots is not None:
                out[:, 1] = np.interp(scores[:, 1], knots[0], knots[1])
                out[:, 0] = 1.0 - out[:, 1]
            return out
        for k, knots in enumerate(self.knots):
            if knots is not None:
                out[:, k] = np.interp(scores[:, k], knots[0], knots[1])
        totals = out.sum(axis=1, keepdims=True)
        # a row every map sends to 0 has no calibrated answer: keep its raw scores
        return np.where(totals > 0, out / np.where(totals > 0, totals, 1.0), scores)


def _isotonic_knots(scores: Floats, labels: Floats) -> tuple[Floats, Floats]:
    """Fit P(label | score) as a non-decreasing step function over the distinct scores."""
    optimize = require_extra("scipy.optimize", "monitoring")
    distinct, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=labels) / counts
    fitted = optimize.isotonic_regression(means, weights=counts.astype(np.float64)).x
    return distinct.astype(np.float64), np.clip(np.asarray(fitted, dtype=np.float64), 0.0, 1.0)


def expected_calibration_error(probabilities: Floats, labels: Floats) -> float:
    """Row-weighted mean gap between predicted probability and observed frequency, in
    ``CALIBRATION_BINS`` equal-width bins."""
    bins = np.minimum((probabilities * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
    predicted = np.bincount(bins, weights=probabilities, minlength=CALIBRATION_BINS)
    observed = np.bincount(bins, weights=labels, minlength=CALIBRATION_BINS)
    return float(np.abs(predicted - observed).sum() / max(len(labels), 1))


def _worth_calibrating(scores: Floats, labels: Floats, rng: np.random.Generator) -> bool:
    """NannyML's check: on random held-out parts of the reference, does isotonic calibration
    fitted on the rest lower the expected calibration error?"""
    raw_error, calibrated_error = 0.0, 0.0
    test_rows = max(1, int(len(scores) * AUTO_TEST_SHARE))
    for _ in range(AUTO_SPLITS):
        order = rng.permutation(len(scores))
        test, train = order[:test_rows], order[test_rows:]
        xs, ys = _isotonic_knots(scores[train], labels[train])
        raw_error += expected_calibration_error(scores[test], labels[test])
        calibrated = np.interp(scores[test], xs, ys)
        calibrated_error += expected_calibration_error(calibrated, labels[test])
    return calibrated_error < raw_error


def fit_calibration(
    scores: Floats,
    labels: Ints,
    method: Literal["isotonic", "none", "auto"],
    rng: np.random.Generator,
) -> Calibration:
    """Learn how to calibrate each class's score from reference rows with labels (class indices).

    Binary problems calibrate P(positive) only; multiclass ones each class one-vs-rest, and
    ``Calibration.apply`` renormalises the rows.
    """
    n_classes = scores.shape[1]
    if method == "none":
        return Calibration(knots=(None,) * n_classes)
    targets = one_hot(labels, n_classes)
    columns = [1] if n_classes == 2 else list(range(n_classes))
    knots: list[tuple[Floats, Floats] | None] = [None] * n_classes
    for k in columns:
        if method == "isotonic" or _worth_calibrating(scores[:, k], targets[:, k], rng):
            knots[k] = _isotonic_knots(scores[:, k], targets[:, k])
    return Calibration(knots=tuple(knots))


def one_hot(labels: Ints, n_classes: int) -> Floats:
    out = np.zeros((len(labels), n_classes), dtype=np.float64)
    out[np.arange(len(labels)), labels] = 1.0
    return out


def _soft_roc_auc(ranking: Floats, positive: Floats) -> float:
    """Area under the ROC curve of ``ranking`` when each row is positive with weight
    ``positive`` and negative with ``1 - positive``: the expected TPR/FPR curve over every
    distinct threshold, integrated by trapezoids (with 0/1 weights: scikit-learn's AUC)."""
    order = np.argsort(-ranking, kind="stable")
    ordered = ranking[order]
    weights = positive[order]
    last_of_tie = np.r_[ordered[1:] != ordered[:-1], True]
    tp = np.r_[0.0, np.cumsum(weights)[last_of_tie]]
    fp = np.r_[0.0, np.cumsum(1.0 - weights)[last_of_tie]]
    if tp[-1] <= 0 or fp[-1] <= 0:
        return math.nan
    area = float(np.sum((fp[1:] - fp[:-1]) * (tp[1:] + tp[:-1])) / 2.0)
    return area / float(tp[-1] * fp[-1])


def _class_metric(metric: str, soft: Floats, predicted_k: npt.NDArray[np.bool_]) -> float:
    """Precision, recall or F1 of one class from expected confusion-matrix cells."""
    tp = float(soft[predicted_k].sum())
    fp = float((1.0 - soft[predicted_k]).sum())
    fn = float(soft[~predicted_k].sum())
    denominator = {"precision": tp + fp, "recall": tp + fn, "f1": 2 * tp + fp + fn}[metric]
    numerator = 2 * tp if metric == "f1" else tp
    return numerator / denominator if denominator > 0 else math.nan


def metric_from_soft_labels(
    metric: str, soft: Floats, scores: Floats, predicted: Ints
) -> tuple[float, str | None]:
    """One metric over rows x classes ``soft`` labels (one-hot: realised; calibrated
    probabilities: expected), the model's ``scores`` (its ranking, for ROC AUC) and its
    ``predicted`` class indices. Returns the value and, where it is NaN, why."""
    n_classes = soft.shape[1]
    if metric == "accuracy":
        return float(soft[np.arange(len(predicted)), predicted].mean()), None
    columns = [n_classes - 1] if n_classes == 2 else range(n_classes)
    if metric == "roc_auc":
        values = [_soft_roc_auc(scores[:, k], soft[:, k]) for k in columns]
        why = "every row belongs (or is expected to belong) to one class; ROC AUC needs both"
    else:
        values = [_class_metric(metric, soft[:, k], predicted == k) for k in columns]
        why = f"{metric} divides by zero: no row of a class is predicted or expected"
    value = float(np.mean(values))
    return (value, None) if math.isfinite(value) else (math.nan, why)


def sampling_error_unit(
    metrics: Sequence[str],
    targets: Floats,
    scores: Floats,
    predicted: Ints,
    rng: np.random.Generator,
    *,
    sample_rows: int = 5_000,
    draws: int = 100,
) -> dict[str, float]:
    """Per metric, the standard deviation of the realised metric on bootstrap samples of the
    reference, scaled to one row: a window of ``n`` rows has standard error ``unit / sqrt(n)``
    (the 1/sqrt(n) law these metrics follow for windows that are not tiny)."""
    rows = min(len(predicted), sample_rows)
    draws_by_metric: dict[str, list[float]] = {m: [] for m in metrics}
    for _ in range(draws):
        pick = rng.integers(0, len(predicted), size=rows)
        for name in metrics:
            value, _ = metric_from_soft_labels(name, targets[pick], scores[pick], predicted[pick])
            if math.isfinite(value):
                draws_by_metric[name].append(value)
    return {
        name: float(np.std(values, ddof=1)) * math.sqrt(rows) if len(values) > 1 else math.nan
        for name, values in draws_by_metric.items()
    }
