"""Confidence intervals for performance metrics, computed for many cells (window x slice) at once.

Three methods, each picked for the metric's shape: Wilson for a proportion, a normal interval on
the influence function (DeLong for AUC) for a mean of per-row losses, and a multinomial bootstrap
of the confusion matrix for ratios of its counts. See ``docs/monitoring.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

__all__ = [
    "bootstrap_confusion",
    "grouped_auc",
    "grouped_mean",
    "normal_interval",
    "wilson_interval",
    "z_value",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def z_value(confidence: float) -> float:
    """The two-sided standard normal quantile: 1.96 for ``confidence=0.95``."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(
    successes: FloatArray, trials: FloatArray, z: float
) -> tuple[FloatArray, FloatArray]:
    """Wilson's score interval for ``successes / trials``.

    Unlike the textbook ``p ± z·sqrt(p(1-p)/n)`` it stays inside [0, 1] and keeps its coverage
    near 0 and 1, where small slices with a good model live. NaN where ``trials == 0``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        p = successes / trials
        z2n = z * z / trials
        denominator = 1 + z2n
        centre = (p + z2n / 2) / denominator
        half = z * np.sqrt(p * (1 - p) / trials + z2n / (4 * trials)) / denominator
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def normal_interval(
    value: FloatArray, variance: FloatArray, z: float, bounds: tuple[float, float]
) -> tuple[FloatArray, FloatArray]:
    """``value ± z·sqrt(variance)``, clipped to the metric's possible range."""
    half = z * np.sqrt(variance)
    return np.clip(value - half, *bounds), np.clip(value + half, *bounds)


def grouped_mean(
    values: FloatArray, cell: IntArray, n_cells: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per cell: count, mean, and the variance of the mean (``s² / n``), in two passes so that
    large offsets do not cancel. The variance is NaN below two rows."""
    count = np.bincount(cell, minlength=n_cells).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.bincount(cell, weights=values, minlength=n_cells) / count
        squares = np.bincount(cell, weights=(values - mean[cell]) ** 2, minlength=n_cells)
        variance = np.where(count > 1, squares / (count * (count - 1)), np.nan)
    return count, mean, variance


def grouped_auc(
    cell: IntArray,
    score: FloatArray,
    positive: BoolArray,
    n_cells: int,
    score_order: IntArray | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """ROC AUC per cell (ties count a half, as scikit-learn's trapezoids do) with DeLong's
    per-row placements, by one sort of (cell, score) for all cells.

    Returns ``auc``, ``positives``, ``negatives`` (per cell) and ``influence`` (per row, in the
    input order): ``(V - AUC) / sqrt(m (m - 1))`` for positives and the same with the negative
    count for negatives, so that the sum of squares over a cell is DeLong's variance
    ``S10 / m + S01 / n``, and averages of several AUCs (one-vs-rest) keep their covariance.
    ``score_order`` (a stable argsort of ``score``) can be shared by calls on the same rows:
    sorting by cell after it is a radix sort when there are fewer than 32,768 cells.
    """
    if score_order is None:
        score_order = np.argsort(score, kind="stable")
    small = np.int16 if n_cells <= np.iinfo(np.int16).max else np.int64
    order = score_order[np.argsort(cell[score_order].astype(small), kind="stable")]
    c, s, p = cell[order], score[order], positive[order]
    rows = len(c)
    new_run = np.ones(rows, dtype=bool)
    new_run[1:] = (c[1:] != c[:-1]) | (s[1:] != s[:-1])
    run = np.cumsum(new_run) - 1
    run_cell = c[new_run]
    pos_in_run = np.bincount(run, weights=p).astype(np.float64)
    neg_in_run = np.bincount(run, weights=~p).astype(np.float64)
    # Counts strictly below each run, within its own cell.
    first_run = np.ones(len(run_cell), dtype=bool)
    first_run[1:] = run_cell[1:] != run_cell[:-1]
    cell_start = np.flatnonzero(first_run)[np.cumsum(first_run) - 1]
    pos_before = np.cumsum(pos_in_run) - pos_in_run
    neg_before = np.cumsum(neg_in_run) - neg_in_run
    pos_below = pos_before - pos_before[cell_start]
    neg_below = neg_before - neg_before[cell_start]
    m = np.bincount(cell, weights=positive, minlength=n_cells).astype(np.float64)
    n = np.bincount(cell, weights=~positive, minlength=n_cells).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        v10 = (neg_below + neg_in_run / 2) / n[run_cell]  # share of negatives a positive beats
        pos_above = m[run_cell] - pos_below - pos_in_run
        v01 = (pos_above + pos_in_run / 2) / m[run_cell]  # share of positives above a negative
        placement = np.where(p, v10[run], v01[run])
        auc = np.bincount(c, weights=np.where(p, placement, 0.0), minlength=n_cells) / m
        scale = np.where(p, np.sqrt(m * (m - 1))[c], np.sqrt(n * (n - 1))[c])
        sorted_influence = (placement - auc[c]) / scale
    influence = np.empty(rows, dtype=np.float64)
    influence[order] = sorted_influence
    return auc, m, n, influence


def bootstrap_confusion(
    confusion: npt.NDArray[np.int64],
    statistics: Callable[[npt.NDArray[np.int64]], dict[str, FloatArray]],
    names: list[str],
    *,
    n_bootstrap: int,
    confidence: float,
    seed: int,
) -> dict[str, FloatArray]:
    """Percentile bootstrap intervals for statistics of one cell's confusion matrix.

    Resampling the rows of a cell with replacement changes only its confusion counts, and those
    counts are then multinomial with the observed shares: drawing ``n_bootstrap`` confusion
    matrices directly is the same bootstrap at a cost independent of the row count. The
    generator is seeded from ``seed`` and the counts, so a cell gets the same interval whether
    it is computed alone or beside others. Returns ``{name: [lower, upper]}``.
    """
    total = int(confusion.sum())
    flat = confusion.ravel()
    rng = np.random.default_rng([seed, *(int(x) for x in flat)])
    draws = rng.multinomial(total, flat / total, size=n_bootstrap).reshape(
        (n_bootstrap, *confusion.shape)
    )
    replicates = statistics(draws)
    alpha = (1 - confidence) / 2
    intervals: dict[str, FloatArray] = {}
    for name in names:
        values = replicates[name]
        values = values[np.isfinite(values)]
        if len(values) == 0:
            intervals[name] = np.array([np.nan, np.nan])
        else:
            intervals[name] = np.quantile(values, [alpha, 1 - alpha])
    return intervals
