"""Confidence intervals: known values, DeLong's variance against its definition, and coverage
near the stated rate in a simulation (200 samples as 200 windows of one report)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopwise.monitoring import performance
from loopwise.monitoring.performance.intervals import grouped_auc, wilson_interval, z_value

REPETITIONS = 200
ROWS = 300  # per simulated sample
# With 200 samples a rate has a standard error of 0.015: each metric must lie within about four
# of them of 0.95 and the average over metrics within two (2,000 samples, measured once: 0.937
# to 0.952 for every metric here).
EACH = (0.88, 0.99)
AVERAGE = (0.92, 0.98)


def test_wilson_matches_the_published_interval() -> None:
    # Newcombe (1998), Table I: 81 of 263 -> 0.2553 to 0.3662 at 95%.
    lower, upper = wilson_interval(np.array([81.0, 0.0]), np.array([263.0, 10.0]), z_value(0.95))
    assert lower[0] == pytest.approx(0.2553, abs=1e-4)
    assert upper[0] == pytest.approx(0.3662, abs=1e-4)
    assert lower[1] == pytest.approx(0.0, abs=1e-12)  # no successes: still a real interval
    assert upper[1] == pytest.approx(0.2775, abs=1e-4)


def test_delong_variance_equals_its_definition_with_ties() -> None:
    rng = np.random.default_rng(0)
    rows = 400
    cell = rng.integers(0, 3, rows)
    positive = rng.random(rows) < 0.4
    score = np.round(rng.normal(size=rows) + positive, 1)  # many ties
    auc, m, n, influence = grouped_auc(cell, score, positive, 3)
    variance = np.bincount(cell, weights=influence**2, minlength=3)
    for c in range(3):
        pos, neg = score[(cell == c) & positive], score[(cell == c) & ~positive]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
        assert auc[c] == pytest.approx(psi.mean(), abs=1e-12)
        expected = v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg)
        assert variance[c] == pytest.approx(expected, rel=1e-9)
        assert (m[c], n[c]) == (len(pos), len(neg))


def _coverage(frame: pd.DataFrame, truth: dict[str, float], **kwargs: object) -> dict[str, float]:
    results = performance(frame, window=ROWS, **kwargs).to_frame()  # type: ignore[arg-type]
    assert results["window"].nunique() == REPETITIONS
    coverage = {}
    for metric, value in truth.items():
        rows = results[results["metric"] == metric]
        assert rows["lower"].notna().all()
        coverage[metric] = float(((rows["lower"] <= value) & (value <= rows["upper"])).mean())
    return coverage


def _check(coverage: dict[str, float]) -> None:
    for metric, rate in coverage.items():
        assert EACH[0] <= rate <= EACH[1], (metric, rate)
    assert AVERAGE[0] <= np.mean(list(coverage.values())) <= AVERAGE[1], coverage


def _classification(rows: int, rng: np.random.Generator) -> pd.DataFrame:
    y = (rng.random(rows) < 0.3).astype(int)
    logit = -1.0 + 1.6 * y + rng.normal(size=rows)
    p1 = 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {"outcome": y, "output.predict": (p1 > 0.4).astype(int), "output.predict_proba": p1}
    )


def test_classification_intervals_cover_the_true_value_at_about_95_percent() -> None:
    rng = np.random.default_rng(42)
    # The "true" values: the same model on 400,000 rows (its own error is ~50 times smaller).
    population = performance(_classification(400_000, rng), scores="output.predict_proba")
    truth = {metric: population.value(metric) for metric in population.metrics}
    samples = _classification(REPETITIONS * ROWS, rng)
    coverage = _coverage(samples, truth, scores="output.predict_proba", n_bootstrap=400)
    _check(coverage)


def test_regression_intervals_cover_the_true_value_at_about_95_percent() -> None:
    rng = np.random.default_rng(7)

    def sample(rows: int) -> pd.DataFrame:
        y = rng.gamma(4.0, 2.0, rows) + 1
        return pd.DataFrame({"outcome": y, "output.predict": y + rng.normal(0, 1.5, rows)})

    population = performance(sample(400_000))
    truth = {metric: population.value(metric) for metric in population.metrics}
    _check(_coverage(sample(REPETITIONS * ROWS), truth))


def test_a_higher_confidence_gives_wider_intervals() -> None:
    frame = _classification(2000, np.random.default_rng(1))
    narrow = performance(frame, confidence=0.8, scores="output.predict_proba").to_frame()
    wide = performance(frame, confidence=0.99, scores="output.predict_proba").to_frame()
    assert ((wide["upper"] - wide["lower"]) > (narrow["upper"] - narrow["lower"])).all()
    assert (narrow["value"] == wide["value"]).all()
