"""The rules one by one: custom functions, uniqueness, row counts, means, severities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopwise.data import (
    AllowedCategories,
    Custom,
    Finite,
    MeanBetween,
    NotNull,
    Range,
    RowCount,
    Suite,
    Unique,
)
from loopwise.errors import InvalidArgumentError


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"user": ["a", "b", "c", "b", "d"], "amount": [10.0, 12.0, 11.0, 950.0, 9.0]},
        index=[100, 101, 102, 103, 104],
    )


def test_custom_check_returning_bool(frame: pd.DataFrame) -> None:
    passes = Custom("amount_positive", lambda f: bool((f["amount"] > 0).all()))  # positional
    fails = Custom(name="small_total", fn=lambda f: f["amount"].sum() < 100, column="amount")
    report = Suite([passes, fails]).validate(frame)
    [finding] = report.findings
    assert (finding.column, finding.rule, finding.observed) == (
        "amount",
        "custom:small_total",
        "failed",
    )
    assert not report.ok


def test_custom_check_returning_failing_row_labels(frame: pd.DataFrame) -> None:
    check = Custom(name="no_outliers", fn=lambda f: f.index[f["amount"] > 100].tolist())
    [finding] = check.check(frame)
    assert finding.failing_rows == 1 and finding.observed == "1 failing rows"
    assert finding.examples == [{"user": "b", "amount": 950.0}]
    assert Custom(name="none", fn=lambda f: []).check(frame) == []


def test_a_broken_custom_check_is_a_finding_not_a_crash(frame: pd.DataFrame) -> None:
    def explode(f: pd.DataFrame) -> bool:
        return bool(f["missing"].any())

    [raised] = Custom(name="explodes", fn=explode).check(frame)
    assert raised.observed.startswith("the check raised KeyError")
    [odd] = Custom(name="mask", fn=lambda f: f["amount"] > 100).check(frame)
    assert "expected True/False or a list" in odd.observed
    with pytest.raises(InvalidArgumentError, match="fn"):
        Suite([Custom(name="x", fn="not callable")]).validate(frame)  # type: ignore[arg-type]


def test_custom_checks_are_not_written_to_yaml(frame: pd.DataFrame) -> None:
    suite = Suite([NotNull(column="user"), Custom(name="mine", fn=lambda f: True)])
    with pytest.raises(InvalidArgumentError, match=r"custom checks \['mine'\]") as info:
        suite.to_yaml()
    assert info.value.details["parameter"] == "drop_custom"
    back = Suite.from_yaml(suite.to_yaml(drop_custom=True))
    assert back.expectations == [NotNull(column="user")]


def test_unique(frame: pd.DataFrame) -> None:
    [finding] = Unique(column="user").check(frame)
    assert finding.failing_rows == 2
    assert finding.observed == "1 values repeated: 'b' (2 rows)"
    assert [row["user"] for row in finding.examples] == ["b", "b"]
    with_nulls = pd.DataFrame({"user": ["a", None, None]})
    assert Unique(column="user").check(with_nulls) == []  # nulls are not values


def test_row_count(frame: pd.DataFrame) -> None:
    assert RowCount(min=1, max=5).check(frame) == []
    [few] = RowCount(min=10).check(frame)
    assert (few.column, few.expected, few.observed) == (None, "a row count at least 10", "5 rows")
    [many] = RowCount(max=3).check(frame)
    assert many.expected == "a row count at most 3"


def test_mean_between_is_over_the_batch_given(frame: pd.DataFrame) -> None:
    """A window of serving inputs: one outlier moves this batch's mean, not the next one's."""
    check = MeanBetween(column="amount", min=5, max=50)
    [finding] = check.check(frame)
    assert finding.observed == "mean 198.4 over 5 values"
    assert check.check(frame.drop(index=103)) == []
    assert check.check(frame.assign(amount=np.nan))[0].severity == "info"  # nothing to average


def test_warning_severity_does_not_fail_the_report(frame: pd.DataFrame) -> None:
    suite = Suite([Range(column="amount", max=100, severity="warning")])
    report = suite.validate(frame)
    assert report.ok and [f.severity for f in report.findings] == ["warning"]


def test_max_null_fraction() -> None:
    frame = pd.DataFrame({"x": [1.0, None, 3.0, 4.0]})
    assert NotNull(column="x", max_null_fraction=0.25).check(frame) == []
    [finding] = NotNull(column="x", max_null_fraction=0.1).check(frame)
    assert finding.expected == "at most 10.0% nulls" and finding.failing_rows == 1
    with pytest.raises(InvalidArgumentError, match="expected 0 to 1"):
        Suite([NotNull(column="x", max_null_fraction=2.0)]).validate(frame)


def test_categories_compare_as_text() -> None:
    check = AllowedCategories(column="code", values=["1", "2", 16])
    assert check.check(pd.DataFrame({"code": [1, 2, 16]})) == []
    assert check.check(pd.DataFrame({"code": [1.0, 16.0, None]})) == []
    [finding] = check.check(pd.DataFrame({"code": pd.Categorical(["1", "7", "7"])}))
    assert finding.observed == "unseen values: '7' (2 rows)"


def test_finite_ignores_integers_and_nulls() -> None:
    assert Finite(column="x").check(pd.DataFrame({"x": [1, 2]})) == []
    assert Finite(column="x").check(pd.DataFrame({"x": [1.0, np.nan]})) == []
    assert Finite(column="x").check(pd.DataFrame({"x": [1.0, -np.inf]}))[0].failing_rows == 1


def test_a_rule_checked_alone_reports_its_missing_column(frame: pd.DataFrame) -> None:
    [finding] = Range(column="age", min=0).check(frame)
    assert (finding.rule, finding.observed) == ("column_present", "column is missing")
