"""The statistics behind the autopilot's decisions, on per-row losses.

Every metric the autopilot protects is the mean of a per-row loss, or a function of it:
accuracy (1 - the share of mistakes), log loss, Brier score, MAE, MAPE and RMSE (the square
root of the mean squared error). That makes the tests simple and stated: two models on the same
rows are compared with a one-sided paired z-test on their per-row loss differences; two arms
of a canary, on different rows, with a one-sided Welch z-test for non-inferiority. Tolerances
are relative to the baseline's value, so that one default suits accuracy and RMSE alike.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loopwise.errors import InvalidArgumentError

__all__ = [
    "CLASSIFICATION",
    "METRICS",
    "Comparison",
    "Predictions",
    "change_point",
    "compare_error_rates",
    "compare_paired",
    "compare_unpaired",
    "metric_value",
    "predict",
    "prediction_shift",
    "row_losses",
]

Floats = npt.NDArray[np.float64]
CLASSIFICATION = ("accuracy", "log_loss", "brier")
METRICS = (*CLASSIFICATION, "rmse", "mae", "mape")
_EPS = 1e-15


@dataclass(frozen=True)
class Predictions:
    """What a model said for some rows: its answers, and class probabilities if it has them."""

    predicted: npt.NDArray[Any]
    proba: Floats | None = None
    classes: list[Any] | None = None


def predict(model: Any, frame: pd.DataFrame, metric: str) -> Predictions:
    """``model``'s predictions for ``frame``, with probabilities where ``metric`` needs them."""
    if metric in ("log_loss", "brier"):
        proba = np.asarray(model.predict_proba(frame), dtype=np.float64)
        classes = list(getattr(getattr(model, "model", model), "classes_", range(proba.shape[1])))
        return Predictions(np.asarray(classes, dtype=object)[proba.argmax(axis=1)], proba, classes)
    return Predictions(np.asarray(model.predict(frame)))


def _same(predicted: npt.NDArray[Any], labels: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Elementwise equality of answers and labels, numbers compared as numbers (1 == 1.0)."""
    try:
        same: npt.NDArray[np.bool_] = np.asarray(predicted, dtype=np.float64) == np.asarray(
            labels, dtype=np.float64
        )
        return same
    except (TypeError, ValueError):
        return np.asarray([str(a) == str(b) for a, b in zip(predicted, labels, strict=True)])


def row_losses(metric: str, labels: npt.NDArray[Any], predictions: Predictions) -> Floats:
    """The per-row loss whose mean (or its square root, for RMSE) is ``metric``'s value."""
    if metric == "accuracy":
        return (~_same(predictions.predicted, labels)).astype(np.float64)
    if metric in ("log_loss", "brier"):
        if predictions.proba is None or predictions.classes is None:
            raise InvalidArgumentError(
                f"{metric} needs class probabilities; the model has no predict_proba.",
                parameter="metric",
            )
        onehot = np.column_stack(
            [_same(np.full(len(labels), c), labels) for c in predictions.classes]
        )
        if metric == "brier":
            return np.asarray(((predictions.proba - onehot) ** 2).sum(axis=1), dtype=np.float64)
        picked = (predictions.proba * onehot).sum(axis=1)
        return np.asarray(-np.log(np.clip(picked, _EPS, 1.0)), dtype=np.float64)
    truth = np.asarray(labels, dtype=np.float64)
    error = np.asarray(predictions.predicted, dtype=np.float64) - truth
    if metric == "rmse":
        return error**2
    if metric == "mae":
        return np.abs(error)
    if metric == "mape":
        return np.abs(error) / np.maximum(np.abs(truth), _EPS)
    raise InvalidArgumentError(
        f"metric: the autopilot protects one of {list(METRICS)}, got {metric!r}.",
        parameter="metric",
    )


def metric_value(metric: str, losses: Floats) -> float:
    """The metric from its per-row losses (NaN for none)."""
    if not len(losses):
        return math.nan
    mean = float(np.mean(losses))
    if metric == "accuracy":
        return 1.0 - mean
    if metric == "rmse":
        return math.sqrt(mean)
    return mean


def _loss_margin(metric: str, relative: float, baseline_loss: float) -> float:
    """A relative tolerance on the metric as an absolute one on the mean per-row loss."""
    if metric == "accuracy":
        return relative * (1.0 - baseline_loss)
    if metric == "rmse":
        return ((1.0 + relative) ** 2 - 1.0) * baseline_loss
    return relative * baseline_loss


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@dataclass(frozen=True)
class Comparison:
    """A candidate against a baseline: their metric values, the test and its verdict."""

    metric: str
    test: str
    rows: int
    baseline: float
    candidate: float
    margin: float
    """The tolerance in per-row loss units that the test used."""
    z: float
    p_value: float
    alpha: float
    passed: bool
    hypothesis: str

    def to_json(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(self).items()
        }


def compare_paired(
    metric: str,
    labels: npt.NDArray[Any],
    baseline: Predictions,
    candidate: Predictions,
    *,
    min_improvement: float,
    alpha: float,
) -> Comparison:
    """Is the candidate better than the baseline by more than ``min_improvement`` (relative)
    on these rows? One-sided paired z-test on per-row loss differences, at ``alpha``."""
    base, cand = row_losses(metric, labels, baseline), row_losses(metric, labels, candidate)
    diff = base - cand  # > 0: the candidate loses less
    n = len(diff)
    margin = _loss_margin(metric, min_improvement, float(np.mean(base))) if n else math.nan
    se = float(np.std(diff, ddof=1)) / math.sqrt(n) if n > 1 else math.inf
    mean = float(np.mean(diff)) if n else 0.0
    z = (mean - margin) / se if se > 0 else (math.inf if mean > margin else -math.inf)
    p = _normal_sf(z)
    return Comparison(
        metric,
        "one-sided paired z-test on per-row loss differences",
        n,
        metric_value(metric, base),
        metric_value(metric, cand),
        margin,
        z,
        p,
        alpha,
        bool(p < alpha),
        f"H1: the candidate's mean loss is lower than the baseline's by more than {margin:.4g}",
    )


def compare_unpaired(
    metric: str,
    baseline_losses: Floats,
    candidate_losses: Floats,
    *,
    max_drop: float,
    alpha: float,
) -> Comparison:
    """Is the candidate worse than the baseline by more than ``max_drop`` (relative), on
    different rows? One-sided Welch z-test; ``passed`` means "not shown worse" (no rollback)."""
    nb, nc = len(baseline_losses), len(candidate_losses)
    mb = float(np.mean(baseline_losses)) if nb else math.nan
    mc = float(np.mean(candidate_losses)) if nc else math.nan
    margin = _loss_margin(metric, max_drop, mb)
    var = (
        float(np.var(baseline_losses, ddof=1)) / nb + float(np.var(candidate_losses, ddof=1)) / nc
        if nb > 1 and nc > 1
        else math.inf
    )
    se = math.sqrt(var)
    excess = mc - mb - margin  # > 0: worse than allowed
    z = excess / se if se > 0 else (math.inf if excess > 0 else -math.inf)
    p = _normal_sf(z)
    return Comparison(
        metric,
        "one-sided Welch z-test for a loss increase beyond the margin",
        nb + nc,
        metric_value(metric, baseline_losses),
        metric_value(metric, candidate_losses),
        margin,
        z,
        p,
        alpha,
        bool(not p < alpha),
        f"H1: the candidate's mean loss exceeds the baseline's by more than {margin:.4g}",
    )


def prediction_shift(baseline: npt.NDArray[Any], candidate: npt.NDArray[Any]) -> float:
    """Population stability index between two arms' predictions, over their classes for
    labels or ten baseline quantile bins for numbers, less what sampling alone gives (0: no
    shift beyond chance)."""
    if not len(baseline) or not len(candidate):
        return math.nan
    numeric = np.issubdtype(np.asarray(baseline).dtype, np.number)
    if numeric and len(np.unique(baseline)) > 10:
        edges = np.unique(
            np.quantile(np.asarray(baseline, dtype=np.float64), np.linspace(0, 1, 11))
        )
        inner = edges[1:-1]
        b: npt.NDArray[Any] = np.bincount(
            np.searchsorted(inner, baseline, side="right"), minlength=len(inner) + 1
        )
        c: npt.NDArray[Any] = np.bincount(
            np.searchsorted(inner, candidate, side="right"), minlength=len(inner) + 1
        )
    else:
        counts_b = pd.Series(np.asarray(baseline)).astype(str).value_counts()
        counts_c = pd.Series(np.asarray(candidate)).astype(str).value_counts()
        keys = sorted(set(counts_b.index) | set(counts_c.index))
        b = np.asarray(counts_b.reindex(keys, fill_value=0).to_numpy())
        c = np.asarray(counts_c.reindex(keys, fill_value=0).to_numpy())
    # Half a row added to every bin keeps empty bins finite; what sampling alone adds to the
    # index on average ((bins - 1) * (1/n + 1/m), as for a chi-square) is taken off, so that
    # small canary arms do not look shifted by chance.
    p = (b + 0.5) / (b.sum() + 0.5 * len(b))
    q = (c + 0.5) / (c.sum() + 0.5 * len(c))
    noise = float((len(b) - 1) * (1 / b.sum() + 1 / c.sum()))
    return max(0.0, float(np.sum((q - p) * np.log(q / p))) - noise)


def change_point(losses: Floats, min_share: float = 0.05) -> int:
    """Where the mean of time-ordered per-row losses shifts: the split that maximises the
    standardised difference of the means on either side (binary segmentation's first split,
    i.e. the CUSUM statistic), leaving at least ``min_share`` of the rows on each side.
    Returns the index of the first row after the change (0 for fewer than 20 rows)."""
    n = len(losses)
    if n < 20:
        return 0
    edge = max(1, int(n * min_share))
    cumulative = np.cumsum(losses)
    split = np.arange(edge, n - edge)
    before = cumulative[split - 1] / split
    after = (cumulative[-1] - cumulative[split - 1]) / (n - split)
    score = np.abs(after - before) * np.sqrt(split * (n - split) / n)
    return int(split[int(np.argmax(score))])


def compare_error_rates(
    baseline: tuple[int, int], candidate: tuple[int, int], *, max_increase: float, alpha: float
) -> dict[str, Any]:
    """Is the candidate's share of failed requests (``(errors, requests)``) higher than the
    baseline's by more than ``max_increase`` (absolute)? One-sided two-proportion z-test;
    ``passed`` means "not shown worse"."""
    (eb, nb), (ec, nc) = baseline, candidate
    rb, rc = (eb / nb if nb else 0.0), (ec / nc if nc else 0.0)
    pooled = (eb + ec) / (nb + nc) if nb + nc else 0.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / max(nb, 1) + 1 / max(nc, 1)))
    excess = rc - rb - max_increase
    z = excess / se if se > 0 else (math.inf if excess > 0 else -math.inf)
    p = _normal_sf(z)
    return {
        "test": "one-sided two-proportion z-test for an error-rate increase beyond the margin",
        "baseline": {"errors": eb, "requests": nb, "rate": rb},
        "candidate": {"errors": ec, "requests": nc, "rate": rc},
        "margin": max_increase,
        "z": z if math.isfinite(z) else None,
        "p_value": p,
        "alpha": alpha,
        "passed": bool(not p < alpha),
    }
