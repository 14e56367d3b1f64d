"""The autopilot's statistics: per-row losses and metrics against hand-computed values, the
paired and unpaired tests' verdicts, the prediction shift and the change point."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from loopwise.autopilot.observe import logged_losses
from loopwise.autopilot.scoring import (
    METRICS,
    Predictions,
    change_point,
    compare_error_rates,
    compare_paired,
    compare_unpaired,
    metric_value,
    prediction_shift,
    row_losses,
)
from loopwise.errors import InvalidArgumentError

# -- per-row losses and metrics -----------------------------------------------------------------


def test_accuracy_compares_numbers_as_numbers() -> None:
    labels = np.array([1.0, 0.0, 1.0, 1.0])
    losses = row_losses("accuracy", labels, Predictions(np.array([1, 0, 0, 1])))
    assert losses.tolist() == [0.0, 0.0, 1.0, 0.0]
    assert metric_value("accuracy", losses) == 0.75
    # Labels that arrived as text of numbers still match numeric answers.
    text = row_losses("accuracy", np.array(["1", "0"], dtype=object), Predictions(np.array([1, 1])))
    assert text.tolist() == [0.0, 1.0]


def test_accuracy_on_string_labels() -> None:
    labels = np.array(["yes", "no", "yes", "no", "no"], dtype=object)
    answers = np.array(["yes", "yes", "yes", "no", "yes"], dtype=object)
    losses = row_losses("accuracy", labels, Predictions(answers))
    assert losses.tolist() == [0.0, 1.0, 0.0, 0.0, 1.0]
    assert metric_value("accuracy", losses) == pytest.approx(0.6)


def test_log_loss_and_brier_by_hand() -> None:
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.5, 0.5]])
    labels = np.array([0.0, 0.0, 1.0])  # floats against integer classes
    predictions = Predictions(np.array([0, 1, 0]), proba, [0, 1])
    log_loss = row_losses("log_loss", labels, predictions)
    assert log_loss == pytest.approx([-math.log(0.8), -math.log(0.3), -math.log(0.5)])
    assert metric_value("log_loss", log_loss) == pytest.approx(
        -(math.log(0.8) + math.log(0.3) + math.log(0.5)) / 3
    )
    brier = row_losses("brier", labels, predictions)
    assert brier == pytest.approx([0.2**2 + 0.2**2, 0.7**2 + 0.7**2, 0.5**2 + 0.5**2])
    assert metric_value("brier", brier) == pytest.approx((0.08 + 0.98 + 0.5) / 3)


def test_log_loss_with_string_classes_and_a_certain_mistake() -> None:
    proba = np.array([[0.1, 0.9], [1.0, 0.0]])
    predictions = Predictions(np.array(["yes", "no"], dtype=object), proba, ["no", "yes"])
    losses = row_losses("log_loss", np.array(["yes", "yes"], dtype=object), predictions)
    assert losses[0] == pytest.approx(-math.log(0.9))
    # Probability 0 for the true class: clipped, large but finite.
    assert math.isfinite(losses[1]) and losses[1] == pytest.approx(-math.log(1e-15))


def test_regression_losses_by_hand() -> None:
    truth = np.array([1.0, 4.0, 2.0])
    predictions = Predictions(np.array([1, 2, 3]))  # integer answers, float labels
    rmse = row_losses("rmse", truth, predictions)
    assert rmse.tolist() == [0.0, 4.0, 1.0]
    assert metric_value("rmse", rmse) == pytest.approx(math.sqrt(5 / 3))
    mae = row_losses("mae", truth, predictions)
    assert mae.tolist() == [0.0, 2.0, 1.0] and metric_value("mae", mae) == pytest.approx(1.0)
    mape = row_losses("mape", truth, predictions)
    assert mape == pytest.approx([0.0, 0.5, 0.5])
    assert metric_value("mape", mape) == pytest.approx(1 / 3)


def test_metric_values_of_no_rows_are_nan_and_unknown_metrics_are_refused() -> None:
    for metric in METRICS:
        assert math.isnan(metric_value(metric, np.array([])))
    with pytest.raises(InvalidArgumentError, match="auc") as caught:
        row_losses("auc", np.array([1]), Predictions(np.array([1])))
    assert caught.value.details["parameter"] == "metric"
    with pytest.raises(InvalidArgumentError, match="predict_proba"):
        row_losses("log_loss", np.array([1]), Predictions(np.array([1])))


# -- the paired test (gates) -----------------------------------------------------------------


def _answers(labels: np.ndarray, error_rate: float, seed: int) -> Predictions:
    """``labels`` with a share ``error_rate`` of them flipped (0/1)."""
    wrong = np.random.default_rng(seed).random(len(labels)) < error_rate
    return Predictions(np.where(wrong, 1 - labels, labels))


@pytest.fixture
def labels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 2, size=2000)


def test_a_clearly_better_candidate_passes(labels: np.ndarray) -> None:
    found = compare_paired(
        "accuracy", labels, _answers(labels, 0.3, 1), _answers(labels, 0.1, 2),
        min_improvement=0.0, alpha=0.05,
    )  # fmt: skip
    assert found.passed and found.p_value < 1e-6
    assert found.rows == 2000
    assert found.baseline == pytest.approx(0.7, abs=0.03)
    assert found.candidate == pytest.approx(0.9, abs=0.03)


def test_an_equal_candidate_does_not_pass(labels: np.ndarray) -> None:
    same = _answers(labels, 0.2, 1)
    identical = compare_paired("accuracy", labels, same, same, min_improvement=0.0, alpha=0.05)
    assert not identical.passed and identical.p_value == 1.0
    # As good, but wrong on other rows: no evidence of being better.
    other = compare_paired(
        "accuracy", labels, same, _answers(labels, 0.2, 7), min_improvement=0.0, alpha=0.05
    )
    assert not other.passed and other.p_value > 0.05


def test_a_worse_candidate_does_not_pass(labels: np.ndarray) -> None:
    found = compare_paired(
        "accuracy", labels, _answers(labels, 0.1, 1), _answers(labels, 0.3, 2),
        min_improvement=0.0, alpha=0.05,
    )  # fmt: skip
    assert not found.passed and found.p_value > 0.99


def test_min_improvement_is_relative_and_respected(labels: np.ndarray) -> None:
    production, candidate = _answers(labels, 0.3, 1), _answers(labels, 0.2, 2)
    # About 0.70 to 0.80: better by ~14% of production's accuracy.
    passes = compare_paired(
        "accuracy", labels, production, candidate, min_improvement=0.05, alpha=0.05
    )
    assert passes.passed
    assert passes.margin == pytest.approx(0.05 * passes.baseline)
    fails = compare_paired(
        "accuracy", labels, production, candidate, min_improvement=0.3, alpha=0.05
    )
    assert not fails.passed


def test_the_paired_test_on_a_regression() -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(size=1000)
    production = Predictions(truth + rng.normal(scale=1.0, size=1000))
    candidate = Predictions(truth + rng.normal(scale=0.5, size=1000))
    found = compare_paired("rmse", truth, production, candidate, min_improvement=0.1, alpha=0.05)
    assert found.passed
    assert found.baseline == pytest.approx(1.0, abs=0.1)
    assert found.candidate == pytest.approx(0.5, abs=0.05)
    # 10% of the RMSE is ((1.1)^2 - 1) = 21% of the mean squared error.
    assert found.margin == pytest.approx(0.21 * found.baseline**2, rel=1e-6)
    backwards = compare_paired(
        "rmse", truth, candidate, production, min_improvement=0.0, alpha=0.05
    )
    assert not backwards.passed


# -- the unpaired test (canary guardrail) ------------------------------------------------------


def test_a_clearly_worse_canary_fails() -> None:
    rng = np.random.default_rng(4)
    base = (rng.random(800) < 0.1).astype(float)
    cand = (rng.random(300) < 0.3).astype(float)
    found = compare_unpaired("accuracy", base, cand, max_drop=0.01, alpha=0.05)
    assert not found.passed and found.p_value < 1e-6
    assert found.rows == 1100
    assert found.candidate < found.baseline


def test_an_equal_canary_passes() -> None:
    rng = np.random.default_rng(5)
    base = (rng.random(800) < 0.2).astype(float)
    cand = (rng.random(300) < 0.2).astype(float)
    found = compare_unpaired("accuracy", base, cand, max_drop=0.01, alpha=0.05)
    assert found.passed and found.p_value > 0.05
    better = compare_unpaired("accuracy", base, cand * 0, max_drop=0.0, alpha=0.05)
    assert better.passed


def test_a_slightly_worse_canary_within_the_margin_passes() -> None:
    rng = np.random.default_rng(6)
    base = np.abs(rng.normal(1.0, 0.1, size=2000))
    cand = np.abs(rng.normal(1.02, 0.1, size=2000))  # MAE up 2%
    assert compare_unpaired("mae", base, cand, max_drop=0.1, alpha=0.05).passed
    assert not compare_unpaired("mae", base, cand, max_drop=0.0, alpha=0.05).passed


# -- prediction shift ------------------------------------------------------------------------


def test_no_shift_between_samples_of_one_distribution() -> None:
    rng = np.random.default_rng(7)
    labels_a = rng.choice(["no", "yes", "maybe"], p=[0.5, 0.3, 0.2], size=2000)
    labels_b = rng.choice(["no", "yes", "maybe"], p=[0.5, 0.3, 0.2], size=2000)
    assert prediction_shift(labels_a, labels_b) == pytest.approx(0.0, abs=0.01)
    numbers_a, numbers_b = rng.normal(size=2000), rng.normal(size=2000)
    assert prediction_shift(numbers_a, numbers_b) == pytest.approx(0.0, abs=0.01)
    # Small arms of one distribution are not shifted by chance either.
    assert prediction_shift(numbers_a[:100], numbers_b[:60]) < 0.1


def test_a_real_shift_is_large() -> None:
    rng = np.random.default_rng(8)
    even = rng.choice([0, 1], p=[0.5, 0.5], size=2000)
    skewed = rng.choice([0, 1], p=[0.9, 0.1], size=2000)
    # The population stability index of 50/50 against 90/10 is about 0.88.
    assert prediction_shift(even, skewed) == pytest.approx(0.88, abs=0.1)
    moved = prediction_shift(rng.normal(size=2000), rng.normal(loc=1.5, size=2000))
    assert moved > 1.0
    # A class the baseline never predicted counts too.
    assert prediction_shift(np.array(["a"] * 500), np.array(["b"] * 500)) > 1.0


def test_prediction_shift_of_nothing_is_nan() -> None:
    assert math.isnan(prediction_shift(np.array([]), np.array([1, 2])))
    assert math.isnan(prediction_shift(np.array([1, 2]), np.array([])))


# -- change point ------------------------------------------------------------------------------


@pytest.mark.parametrize("at", [300, 1000, 1700])
def test_a_change_point_is_found_where_the_losses_shift(at: int) -> None:
    rng = np.random.default_rng(at)
    losses = np.concatenate([rng.random(at) < 0.1, rng.random(2000 - at) < 0.4]).astype(float)
    assert abs(change_point(losses) - at) <= 0.03 * 2000


def test_a_change_point_in_continuous_losses() -> None:
    rng = np.random.default_rng(9)
    losses = np.concatenate([rng.normal(1.0, 0.5, 1200), rng.normal(1.6, 0.5, 800)]) ** 2
    assert abs(change_point(losses) - 1200) <= 60


def test_change_point_edges() -> None:
    assert change_point(np.array([])) == 0
    assert change_point(np.ones(19)) == 0
    # A change at the very start is found no earlier than min_share of the rows.
    losses = np.concatenate([np.zeros(10), np.ones(990)])
    assert change_point(losses, min_share=0.05) == 50
    found = change_point(np.ones(20))  # no change at all: some index inside, never outside
    assert 1 <= found < 20


def test_the_unpaired_test_of_no_rows_does_not_roll_back() -> None:
    empty = np.array([])
    found = compare_unpaired("accuracy", empty, empty, max_drop=0.01, alpha=0.05)
    assert found.passed and found.rows == 0
    assert found.to_json()["baseline"] is None  # NaN becomes null in the evidence


def test_the_paired_test_of_one_row_does_not_pass() -> None:
    one = np.array([1])
    found = compare_paired(
        "accuracy", one, Predictions(np.array([0])), Predictions(one),
        min_improvement=0.0, alpha=0.05,
    )  # fmt: skip
    assert not found.passed and found.rows == 1


def test_the_paired_test_of_no_rows_does_not_pass() -> None:
    empty = np.array([])
    found = compare_paired(
        "accuracy", empty, Predictions(empty), Predictions(empty),
        min_improvement=0.0, alpha=0.05,
    )  # fmt: skip
    assert not found.passed and found.rows == 0


def test_logged_log_loss_of_string_labels() -> None:
    frame = pd.DataFrame(
        {
            "outcome": ["no", "yes"],
            "output.predict": ["no", "yes"],
            "output.predict_proba": [[0.9, 0.1], [0.2, 0.8]],
        }
    )
    assert logged_losses(frame, "log_loss") == pytest.approx([-math.log(0.9), -math.log(0.8)])


def test_error_rates_roll_back_only_a_clear_increase() -> None:
    worse = compare_error_rates((3, 300), (30, 300), max_increase=0.01, alpha=0.05)
    assert not worse["passed"] and worse["candidate"]["rate"] == 0.1
    same = compare_error_rates((3, 300), (4, 300), max_increase=0.01, alpha=0.05)
    assert same["passed"]
    # Within the margin: 1 point more failures is allowed by max_increase=0.02.
    allowed = compare_error_rates((0, 2000), (20, 2000), max_increase=0.02, alpha=0.05)
    assert allowed["passed"]
    nothing = compare_error_rates((0, 0), (0, 0), max_increase=0.01, alpha=0.05)
    assert nothing["passed"]
