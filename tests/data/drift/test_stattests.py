"""The conformance suite every drift test passes, and the default choice of test.

A new test in ``STAT_TESTS`` is done when this suite passes for every kind it claims.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from loopwise.data.drift.stattests import STAT_TESTS, Sample, StatTest, default_test, get_stat_test
from loopwise.errors import InvalidArgumentError, MissingDependencyError

ROWS = 500


def _pair(
    kind: str, shifted: bool, seed: int = 7, reference_rows: int = ROWS, current_rows: int = ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """Two samples of one kind: drawn alike, or with the current one clearly moved."""
    rng = np.random.default_rng(seed)
    if kind == "numeric":
        reference = rng.integers(0, 10, reference_rows).astype(np.float64)
        low, high = (3, 13) if shifted else (0, 10)
        return reference, rng.integers(low, high, current_rows).astype(np.float64)
    values = np.array(["a", "b", "c", "d"], dtype=object)
    reference = rng.choice(values, reference_rows, p=[0.4, 0.3, 0.2, 0.1])
    shares = [0.1, 0.2, 0.3, 0.4] if shifted else [0.4, 0.3, 0.2, 0.1]
    return reference, rng.choice(values, current_rows, p=shares)


CASES = [(test, kind) for test in STAT_TESTS.values() for kind in sorted(test.kinds)]


def _ids(case: tuple[StatTest, str]) -> str:
    return f"{case[0].name}-{case[1]}"


def _verdict(test: StatTest, reference: object, current: object) -> bool:
    statistic, p_value = test.compute(reference, current)
    return test.is_drift(statistic, p_value, test.default_threshold)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_identical_samples_do_not_drift(case: tuple[StatTest, str]) -> None:
    test, kind = case
    reference, _ = _pair(kind, shifted=False)
    statistic, p_value = test.compute(reference, reference.copy())
    assert not test.is_drift(statistic, p_value, test.default_threshold)
    if test.measure == "distance":
        assert statistic == pytest.approx(0.0, abs=1e-12)
    else:
        assert p_value == pytest.approx(1.0)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_a_clear_shift_drifts(case: tuple[StatTest, str]) -> None:
    test, kind = case
    reference, current = _pair(kind, shifted=True)
    assert _verdict(test, reference, current)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_samples_drawn_alike_rarely_drift(case: tuple[StatTest, str]) -> None:
    """p-value tests raise false alarms at about their level (5%); distances stay below 0.1.

    The reference is the larger sample, as in monitoring (and as the chi-squared test, which
    takes the reference's shares as exact, needs: on equal sizes it alarms on a third of such
    pairs).
    """
    test, kind = case
    alarms = sum(
        _verdict(test, *_pair(kind, False, seed, reference_rows=20_000, current_rows=2_000))
        for seed in range(40)
    )
    assert alarms <= (6 if test.measure == "p_value" else 0)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_results_are_deterministic_and_order_free(case: tuple[StatTest, str]) -> None:
    test, kind = case
    reference, current = _pair(kind, shifted=True)
    first = test.compute(reference, current)
    rng = np.random.default_rng(1)
    again = test.compute(rng.permutation(reference), rng.permutation(current))
    assert first[0] == pytest.approx(again[0], rel=1e-12)
    assert first[1] == (None if again[1] is None else pytest.approx(again[1], rel=1e-12))


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_null_nan_and_infinity_are_dropped(case: tuple[StatTest, str]) -> None:
    test, kind = case
    reference, current = _pair(kind, shifted=True)
    if kind == "numeric":
        holey = np.concatenate([current, [np.nan, np.inf, -np.inf]])
    else:
        holey = np.concatenate([current, np.array([None, math.nan], dtype=object)])
    assert test.compute(reference, holey) == test.compute(reference, current)
    assert Sample.of(holey).dropped == (3 if kind == "numeric" else 2)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_tiny_and_empty_samples(case: tuple[StatTest, str]) -> None:
    test, kind = case
    one, other = (np.array([1.0]), np.array([2.0])) if kind == "numeric" else (["a"], ["b"])
    statistic, p_value = test.compute(one, one)
    assert not test.is_drift(statistic, p_value, test.default_threshold)
    statistic, p_value = test.compute(one, other)  # defined, whatever the verdict
    assert not math.isnan(statistic)
    assert p_value is None or 0.0 <= p_value <= 1.0
    all_null = np.array([np.nan, np.nan]) if kind == "numeric" else [None, None]
    with pytest.raises(InvalidArgumentError, match="at least one value in current"):
        test.compute(one, all_null)
    with pytest.raises(InvalidArgumentError, match="at least one value in reference"):
        test.compute([], one)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_declares_its_interface(case: tuple[StatTest, str]) -> None:
    test, _ = case
    assert test.measure in ("p_value", "distance")
    assert test.kinds <= {"numeric", "categorical"}
    assert 0 < test.default_threshold < 1
    assert get_stat_test(test.name) is test


def test_values_the_reference_never_had_are_drift() -> None:
    statistic, p_value = STAT_TESTS["chisquare"].compute(["a", "b"] * 50, ["a", "b", "c"] * 50)
    assert math.isinf(statistic) and p_value == 0.0
    assert STAT_TESTS["psi"].compute(["a"] * 99, ["a"] * 50 + ["z"] * 50)[0] > 1


def test_default_choice_follows_evidently() -> None:
    assert default_test("numeric", 1000, 6).name == "ks"
    assert default_test("numeric", 1000, 5).name == "chisquare"
    assert default_test("numeric", 1000, 2).name == "z"
    assert default_test("numeric", 1001, 6).name == "wasserstein"
    assert default_test("numeric", 1001, 5).name == "jensenshannon"
    assert default_test("categorical", 1000, 3).name == "chisquare"
    assert default_test("categorical", 1000, 2).name == "z"
    assert default_test("categorical", 1001, 50).name == "jensenshannon"


def test_unknown_or_unfit_tests_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="among chisquare"):
        get_stat_test("kolmogorov")
    with pytest.raises(InvalidArgumentError, match="does not apply to categorical"):
        get_stat_test("ks", "categorical")
    with pytest.raises(InvalidArgumentError, match="1-D"):
        STAT_TESTS["ks"].compute(np.zeros((3, 2)), [1.0])
    with pytest.raises(InvalidArgumentError, match="needs numbers"):
        STAT_TESTS["wasserstein"].compute(["a", "b"], ["a", "c"])


def test_without_scipy_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    with pytest.raises(MissingDependencyError, match=r"loopwise\[monitoring\]"):
        STAT_TESTS["ks"].compute([1.0, 2.0], [1.0, 3.0])


@pytest.mark.parametrize(("reference_rows", "current_rows"), [(300, 300), (300, 451), (1000, 7)])
def test_distances_equal_scipy(reference_rows: int, current_rows: int) -> None:
    """The NumPy-only distances equal SciPy's (which Evidently calls), ties included."""
    from scipy.spatial.distance import jensenshannon  # type: ignore[import-untyped]
    from scipy.stats import wasserstein_distance  # type: ignore[import-untyped]

    rng = np.random.default_rng(reference_rows + current_rows)
    reference = np.round(rng.normal(0, 1, reference_rows), 1)
    current = np.round(rng.normal(0.3, 1.2, current_rows), 1)
    ours, _ = STAT_TESTS["wasserstein"].compute(reference, current)
    expected = wasserstein_distance(reference, current) / max(np.std(reference), 0.001)
    assert ours == pytest.approx(expected, rel=1e-12)
    labels = np.array(list("abcde"), dtype=object)
    ref_labels, cur_labels = rng.choice(labels, reference_rows), rng.choice(labels, current_rows)
    ours, _ = STAT_TESTS["jensenshannon"].compute(ref_labels, cur_labels)
    shares = [
        np.array([np.mean(side == label) for label in labels]) for side in (ref_labels, cur_labels)
    ]
    assert ours == pytest.approx(jensenshannon(shares[0], shares[1]), rel=1e-12)
