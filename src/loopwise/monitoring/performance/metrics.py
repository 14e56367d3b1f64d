"""The performance metrics by name, each computed for many cells (window x slice) in one pass,
with its confidence interval and, where it is undefined, the reason.

Values equal scikit-learn's (``accuracy_score``, ``roc_auc_score``, …); where scikit-learn
would return 0 or raise for an undefined binary metric, the value here is NaN with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from loopwise.monitoring.performance.intervals import (
    bootstrap_confusion,
    grouped_auc,
    grouped_mean,
    normal_interval,
    wilson_interval,
)

__all__ = [
    "INTERVAL_METHODS",
    "METRICS",
    "CellValues",
    "ClassificationData",
    "Metric",
    "RegressionData",
    "Task",
    "classification_cells",
    "regression_cells",
]

Task = Literal["classification", "regression"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
INF = float("inf")


@dataclass(frozen=True)
class Metric:
    """A metric's name, task, direction, interval method and possible range."""

    name: str
    task: Task
    higher_is_better: bool
    interval: str  # "wilson", "delong", "normal" or "bootstrap"; see INTERVAL_METHODS
    needs_scores: bool = False
    bounds: tuple[float, float] = (0.0, 1.0)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", "classification", True, "wilson"),
        Metric("balanced_accuracy", "classification", True, "bootstrap"),
        Metric("precision", "classification", True, "wilson"),  # bootstrap when multiclass
        Metric("recall", "classification", True, "wilson"),  # bootstrap when multiclass
        Metric("f1", "classification", True, "bootstrap"),
        Metric("roc_auc", "classification", True, "delong", needs_scores=True),
        Metric("log_loss", "classification", False, "normal", True, (0.0, INF)),
        Metric("brier", "classification", False, "normal", True, (0.0, 2.0)),
        Metric("rmse", "regression", False, "normal", bounds=(0.0, INF)),
        Metric("mae", "regression", False, "normal", bounds=(0.0, INF)),
        Metric("mape", "regression", False, "normal", bounds=(0.0, INF)),
        Metric("r2", "regression", True, "normal", bounds=(-INF, 1.0)),
    )
}

INTERVAL_METHODS: dict[str, str] = {
    "wilson": "Wilson score interval: the metric is a proportion of rows",
    "delong": "DeLong: normal interval with DeLong's variance from per-row placements",
    "normal": "normal interval on the mean of per-row losses (influence function; "
    "rmse: square root of the MSE interval)",
    "bootstrap": "percentile bootstrap of the confusion matrix (multinomial resampling)",
}

_CONFUSION_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1")


@dataclass(frozen=True)
class ClassificationData:
    """Labelled rows as class indices; ``scores`` is (rows, classes) in the classes' order."""

    y: IntArray
    pred: IntArray
    scores: FloatArray | None
    n_classes: int
    positive: int | None  # the positive class's index when binary, else None
    _orders: dict[int, IntArray] = field(default_factory=dict, compare=False, repr=False)

    def score_order(self, c: int) -> IntArray:
        """A stable argsort of class ``c``'s scores, shared by every slice over these rows."""
        assert self.scores is not None
        if c not in self._orders:
            self._orders[c] = np.argsort(self.scores[:, c], kind="stable")
        return self._orders[c]

    def take(self, keep: BoolArray) -> ClassificationData:
        scores = None if self.scores is None else self.scores[keep]
        return ClassificationData(
            self.y[keep], self.pred[keep], scores, self.n_classes, self.positive
        )


@dataclass(frozen=True)
class RegressionData:
    y: FloatArray
    pred: FloatArray

    def take(self, keep: BoolArray) -> RegressionData:
        return RegressionData(self.y[keep], self.pred[keep])


@dataclass
class CellValues:
    """One metric over cells: value, interval and why a value is missing (None when it is not)."""

    value: FloatArray
    lower: FloatArray
    upper: FloatArray
    reason: npt.NDArray[np.object_]
    method: str

    @classmethod
    def empty(cls, n_cells: int, method: str) -> CellValues:
        nan = np.full(n_cells, np.nan)
        return cls(nan, nan.copy(), nan.copy(), np.full(n_cells, None, dtype=object), method)

    def undefined(self, where: BoolArray, reason: str) -> None:
        """Blank the cells in ``where`` that have no reason yet, giving them ``reason``."""
        where = where & np.array([r is None for r in self.reason], dtype=bool)
        self.value[where] = self.lower[where] = self.upper[where] = np.nan
        self.reason[where] = reason


def confusion_statistics(
    confusion: npt.NDArray[np.int64], positive: int | None
) -> dict[str, FloatArray]:
    """Accuracy, balanced accuracy, precision, recall and F1 from confusion matrices
    ``[..., true, predicted]``: the positive class's when binary, else macro averages over the
    classes present among labels or predictions (scikit-learn's rule: a present class's
    undefined precision or recall counts as 0; balanced accuracy averages the recall of the
    classes present among the labels)."""
    conf = confusion.astype(np.float64)
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    support = conf.sum(axis=-1)
    predicted = conf.sum(axis=-2)
    total = support.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = tp / support
        precision = tp / predicted
        f1 = 2 * tp / (support + predicted)
        has_label = support > 0
        out = {
            "accuracy": tp.sum(axis=-1) / total,
            "balanced_accuracy": np.where(has_label, recall, 0).sum(axis=-1)
            / has_label.sum(axis=-1),
        }
        if positive is not None:
            out |= {
                "precision": precision[..., positive],
                "recall": recall[..., positive],
                "f1": f1[..., positive],
            }
        else:
            present = (support + predicted) > 0
            count = present.sum(axis=-1)
            for name, per_class in (("precision", precision), ("recall", recall), ("f1", f1)):
                out[name] = np.where(present, np.nan_to_num(per_class), 0).sum(axis=-1) / count
    return out


def classification_cells(
    data: ClassificationData,
    cell: IntArray,
    n_cells: int,
    metrics: list[str],
    *,
    eligible: BoolArray,
    z: float,
    confidence: float,
    n_bootstrap: int,
    seed: int,
) -> dict[str, CellValues]:
    """Every requested metric for every cell; ``eligible`` cells get bootstrap intervals (the
    others are too small to report and are blanked by the caller)."""
    k = data.n_classes
    confusion = np.bincount((cell * k + data.y) * k + data.pred, minlength=n_cells * k * k).reshape(
        n_cells, k, k
    )
    stats = confusion_statistics(confusion, data.positive)
    binary = data.positive is not None
    out: dict[str, CellValues] = {}
    tp = np.diagonal(confusion, axis1=1, axis2=2).astype(np.float64)
    wilson_counts = {"accuracy": (tp.sum(axis=1), confusion.sum(axis=(1, 2)))}
    if binary:
        pos = data.positive
        wilson_counts["precision"] = (tp[:, pos], confusion[:, :, pos].sum(axis=1))
        wilson_counts["recall"] = (tp[:, pos], confusion[:, pos, :].sum(axis=1))
    bootstrapped = [m for m in metrics if m in _CONFUSION_METRICS and m not in wilson_counts]
    intervals = _bootstrap_cells(
        confusion, data.positive, bootstrapped, eligible, n_bootstrap, confidence, seed
    )
    for name in metrics:
        if name not in _CONFUSION_METRICS:
            continue
        values = CellValues.empty(n_cells, "wilson" if name in wilson_counts else "bootstrap")
        values.value[:] = stats[name]
        if name in wilson_counts:
            successes, trials = wilson_counts[name]
            values.lower[:], values.upper[:] = wilson_interval(
                successes, trials.astype(np.float64), z
            )
        else:
            values.lower[:], values.upper[:] = intervals[name]
        out[name] = values
    if binary and data.positive is not None:
        pos = data.positive
        for name, empty, why in (
            ("precision", confusion[:, :, pos].sum(axis=1) == 0, "no row predicted positive"),
            ("recall", confusion[:, pos, :].sum(axis=1) == 0, "no labelled positive row"),
            ("f1", confusion[:, pos, :].sum(axis=1) + confusion[:, :, pos].sum(axis=1) == 0,
             "no positive among labels or predictions"),
        ):  # fmt: skip
            if name in out:
                out[name].undefined(empty, why)
    if data.scores is not None:
        out |= _score_cells(data, cell, n_cells, metrics, z)
    return out


def _bootstrap_cells(
    confusion: npt.NDArray[np.int64],
    positive: int | None,
    names: list[str],
    eligible: BoolArray,
    n_bootstrap: int,
    confidence: float,
    seed: int,
) -> dict[str, tuple[FloatArray, FloatArray]]:
    n_cells = len(confusion)
    lower = {name: np.full(n_cells, np.nan) for name in names}
    upper = {name: np.full(n_cells, np.nan) for name in names}
    if names:
        for i in np.flatnonzero(eligible & (confusion.sum(axis=(1, 2)) > 0)):
            found = bootstrap_confusion(
                confusion[i],
                lambda draws: confusion_statistics(draws, positive),
                names,
                n_bootstrap=n_bootstrap,
                confidence=confidence,
                seed=seed,
            )
            for name in names:
                lower[name][i], upper[name][i] = found[name]
    return {name: (lower[name], upper[name]) for name in names}


def _score_cells(
    data: ClassificationData, cell: IntArray, n_cells: int, metrics: list[str], z: float
) -> dict[str, CellValues]:
    assert data.scores is not None
    scores, y, k = data.scores, data.y, data.n_classes
    rows = np.arange(len(y))
    out: dict[str, CellValues] = {}
    if "log_loss" in metrics or "brier" in metrics:
        eps = np.finfo(np.float64).eps
        per_row = {
            "log_loss": -np.log(np.clip(scores[rows, y], eps, 1 - eps)),
            "brier": (
                (scores[:, data.positive] - (y == data.positive)) ** 2
                if data.positive is not None
                else ((scores - np.eye(k)[y]) ** 2).sum(axis=1)
            ),
        }
        for name in ("log_loss", "brier"):
            if name in metrics:
                values = CellValues.empty(n_cells, "normal")
                _, values.value[:], variance = grouped_mean(per_row[name], cell, n_cells)
                values.lower[:], values.upper[:] = normal_interval(
                    values.value, variance, z, METRICS[name].bounds
                )
                out[name] = values
    if "roc_auc" in metrics:
        out["roc_auc"] = _auc_cells(data, cell, n_cells, z)
    return out


def _auc_cells(data: ClassificationData, cell: IntArray, n_cells: int, z: float) -> CellValues:
    """Binary: the positive class's AUC. Multiclass: one-vs-rest macro average, defined only
    where every class is among the labels (scikit-learn raises otherwise)."""
    assert data.scores is not None
    values = CellValues.empty(n_cells, "delong")
    classes = [data.positive] if data.positive is not None else list(range(data.n_classes))
    total = np.zeros(n_cells)
    influence = np.zeros(len(cell))
    missing = np.zeros(n_cells, dtype=bool)
    for c in classes:
        auc, m, n, row_influence = grouped_auc(
            cell, data.scores[:, c], data.y == c, n_cells, data.score_order(c)
        )
        total += auc
        influence += row_influence
        missing |= (m == 0) | (n == 0)
    values.value[:] = total / len(classes)
    variance = np.bincount(cell, weights=(influence / len(classes)) ** 2, minlength=n_cells).astype(
        np.float64
    )
    values.lower[:], values.upper[:] = normal_interval(values.value, variance, z, (0.0, 1.0))
    why = (
        "only one class among the labelled rows"
        if data.positive is not None
        else "one-vs-rest AUC needs every class among the labelled rows"
    )
    values.undefined(missing, why)
    return values


def regression_cells(
    data: RegressionData, cell: IntArray, n_cells: int, metrics: list[str], *, z: float
) -> dict[str, CellValues]:
    """RMSE, MAE, MAPE (scikit-learn's: errors over ``max(|y|, eps)``) and R², each with a
    normal interval from its influence function."""
    error = data.pred - data.y
    out: dict[str, CellValues] = {}
    for name in ("mae", "rmse", "mape"):
        if name in metrics:
            values = CellValues.empty(n_cells, "normal")
            _, mean, variance = grouped_mean(_regression_loss(name, data, error), cell, n_cells)
            lower, upper = normal_interval(mean, variance, z, (0.0, INF))
            if name == "rmse":  # a monotone map of the MSE's interval
                mean, lower, upper = np.sqrt(mean), np.sqrt(lower), np.sqrt(upper)
            values.value[:], values.lower[:], values.upper[:] = mean, lower, upper
            out[name] = values
    if "r2" in metrics:
        out["r2"] = _r2_cells(data, error, cell, n_cells, z)
    return out


def _regression_loss(name: str, data: RegressionData, error: FloatArray) -> FloatArray:
    if name == "mae":
        return np.abs(error)
    if name == "rmse":
        return error**2
    return np.abs(error) / np.maximum(np.abs(data.y), np.finfo(np.float64).eps)


def _r2_cells(
    data: RegressionData, error: FloatArray, cell: IntArray, n_cells: int, z: float
) -> CellValues:
    """R² = 1 - A/B with A the mean squared error and B the labels' variance; its influence
    function is ``-(a - A)/B + A (b - B)/B²`` (delta method)."""
    values = CellValues.empty(n_cells, "normal")
    count, y_mean, _ = grouped_mean(data.y, cell, n_cells)
    a = error**2
    b = (data.y - y_mean[cell]) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        big_a = np.bincount(cell, weights=a, minlength=n_cells) / count
        big_b = np.bincount(cell, weights=b, minlength=n_cells) / count
        influence = -(a - big_a[cell]) / big_b[cell] + big_a[cell] * (b - big_b[cell]) / (
            big_b[cell] ** 2
        )
        sum_squares = np.bincount(cell, weights=influence**2, minlength=n_cells)
        variance = np.where(count > 1, sum_squares / (count * (count - 1)), np.nan)
        values.value[:] = 1 - big_a / big_b
    values.lower[:], values.upper[:] = normal_interval(values.value, variance, z, (-INF, 1.0))
    values.undefined((big_b == 0) & (count > 0), "the labels are constant; R² is undefined")
    return values
