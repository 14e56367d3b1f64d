"""Validation suites on real data: inference, the broken-upstream cases, and every input form."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import loopwise as lw
from loopwise.context import Context
from loopwise.data import (
    ColumnType,
    NotNull,
    Range,
    Suite,
    ValidationReport,
    infer_suite,
    validate,
)
from loopwise.errors import InvalidArgumentError
from loopwise.examples import load_acs


@pytest.fixture(scope="module")
def acs() -> pd.DataFrame:
    """3,000 people of 2015 (a small sample: fast, and still every ACS dtype)."""
    return load_acs(years=[2015]).sample(3000, random_state=7).reset_index(drop=True)


@pytest.fixture(scope="module")
def suite(acs: pd.DataFrame) -> Suite:
    return infer_suite(acs)


def _only(report: ValidationReport, severity: str = "error") -> list[tuple[str | None, str]]:
    return [(f.column, f.rule) for f in report.findings if f.severity == severity]


def test_inferred_suite_passes_its_own_data(acs: pd.DataFrame, suite: Suite) -> None:
    report = suite.validate(acs)
    assert report.ok and report.findings == []
    assert report.num_rows == 3000 and report.num_expectations == len(suite.expectations)
    rules = {(e.target, e.rule) for e in suite.expectations}
    assert ("AGEP", "range") in rules and ("SEX", "categories") in rules
    assert ("id", "unique") in rules and (None, "row_count") in rules
    assert ("AGEP", "unique") not in rules  # floats with repeats are never "unique"


def test_inferred_suite_passes_later_years_of_the_same_source() -> None:
    frame = load_acs()
    years = [frame[frame["year"] == y].drop(columns=["id", "year"]) for y in range(2015, 2019)]
    suite = infer_suite(years[0])  # id and year left out: both grow with time
    for later in years[1:]:
        assert suite.validate(later).ok


def test_age_in_months_breaks_the_inferred_range(acs: pd.DataFrame, suite: Suite) -> None:
    """The upstream bug the autopilot must refuse to train on: AGEP in months, not years."""
    months = acs.assign(AGEP=acs["AGEP"] * 12)
    report = suite.validate(months)
    assert not report.ok
    assert _only(report) == [("AGEP", "range")]
    [finding] = report.findings
    [age_range] = [e for e in suite.expectations if isinstance(e, Range) and e.column == "AGEP"]
    assert age_range.max is not None and 95 <= age_range.max < 12 * 17
    assert finding.failing_rows == int((months["AGEP"] > age_range.max).sum()) > 2000
    assert len(finding.examples) == 5
    assert all(row["AGEP"] > age_range.max for row in finding.examples)
    assert set(finding.examples[0]) == set(acs.columns)  # whole rows, to find them upstream


def test_a_dropped_column_is_one_finding(acs: pd.DataFrame, suite: Suite) -> None:
    report = suite.validate(acs.drop(columns=["SCHL", "AGEP"]))
    assert _only(report) == [("AGEP", "column_present"), ("SCHL", "column_present")]
    assert report.findings[0].observed == "column is missing"


def test_ages_as_strings_give_a_type_finding_and_skip_numeric_rules(
    acs: pd.DataFrame, suite: Suite
) -> None:
    report = suite.validate(acs.assign(AGEP=acs["AGEP"].astype(int).astype(str)))
    assert _only(report) == [("AGEP", "type")]
    assert report.errors[0].expected == "float" and "string" in report.errors[0].observed
    assert report.errors[0].failing_rows == 3000
    notes = [f for f in report.findings if f.severity == "info"]
    assert {f.rule for f in notes} == {"range", "finite"}
    assert all(f.observed.startswith("skipped") for f in notes)


def test_nan_and_infinity_are_reported(acs: pd.DataFrame, suite: Suite) -> None:
    broken = acs.copy()
    broken.loc[[0, 1, 2, 3], "AGEP"] = [np.nan, np.inf, -np.inf, np.nan]
    report = suite.validate(broken)
    assert _only(report) == [("AGEP", "not_null"), ("AGEP", "finite"), ("AGEP", "range")]
    nulls, infinite, outside = report.errors
    assert nulls.failing_rows == 2 and "2 of 3000" in nulls.observed
    assert infinite.failing_rows == 2 and outside.failing_rows == 2
    assert "-inf" in outside.observed
    json.dumps(report.to_dict(), allow_nan=False)  # NaN and inf examples stay valid JSON
    assert report.to_dict()["findings"][1]["examples"][0]["AGEP"] == "inf"


def test_unseen_categories_are_listed_with_counts(acs: pd.DataFrame, suite: Suite) -> None:
    broken = acs.assign(SEX=acs["SEX"].astype(str))
    broken.loc[[0, 1, 2], "SEX"] = ["3", "3", "unknown"]
    report = suite.validate(broken)
    assert _only(report) == [("SEX", "categories")]
    [finding] = report.findings
    assert finding.failing_rows == 3
    assert finding.observed == "unseen values: '3' (2 rows), 'unknown' (1 row)"
    assert [row["SEX"] for row in finding.examples] == ["3", "3", "unknown"]


def test_serving_inputs_as_plain_json_types_pass(acs: pd.DataFrame, suite: Suite) -> None:
    """A request decoded from JSON: categories arrive as strings, whole floats as floats."""
    records = json.loads(acs.head(3).to_json(orient="records"))
    batch = pd.DataFrame(records).astype({"id": "float64"})
    assert batch["SCHL"].dtype != acs["SCHL"].dtype
    assert suite.validate(batch).ok
    batch.loc[0, "id"] = 0.5
    assert _only(suite.validate(batch)) == [("id", "type")]


def test_an_empty_frame_breaks_the_row_count(acs: pd.DataFrame, suite: Suite) -> None:
    report = suite.validate(acs.iloc[:0])
    assert _only(report) == [(None, "row_count")]
    assert report.findings[0].observed == "0 rows"
    with pytest.raises(InvalidArgumentError, match="at least one row") as info:
        infer_suite(acs.iloc[:0])
    assert info.value.details["parameter"] == "data"


def test_an_all_null_column_is_a_null_finding_not_a_crash(acs: pd.DataFrame, suite: Suite) -> None:
    for empty in (np.nan, None):
        report = suite.validate(acs.assign(AGEP=empty))
        assert _only(report) == [("AGEP", "not_null")]
        assert report.errors[0].failing_rows == 3000


def test_batch_equals_loop(acs: pd.DataFrame, suite: Suite) -> None:
    """Row rules flag the same rows in a batch as when each row is validated alone."""
    batch = acs.head(40).copy()
    batch["SEX"] = batch["SEX"].astype(str)
    batch.loc[[3, 17], "SEX"] = "9"
    batch.loc[[5, 17, 30], "AGEP"] = [400.0, np.nan, -1.0]
    whole = {(f.column, f.rule): f.failing_rows for f in suite.validate(batch).errors}
    looped: dict[tuple[str | None, str], int] = {}
    for i in range(len(batch)):
        for f in suite.validate(batch.iloc[[i]]).errors:
            looped[(f.column, f.rule)] = looped.get((f.column, f.rule), 0) + f.failing_rows
    assert (
        whole == looped == {("SEX", "categories"): 2, ("AGEP", "range"): 2, ("AGEP", "not_null"): 1}
    )


def test_inference_options(acs: pd.DataFrame) -> None:
    tight = infer_suite(acs[["AGEP"]], range_slack=0)
    [exact] = [e for e in tight.expectations if isinstance(e, Range)]
    assert (exact.min, exact.max) == (acs["AGEP"].min(), acs["AGEP"].max())
    robust = infer_suite(acs[["AGEP"]], range_slack=0, range_quantiles=(0.05, 0.95))
    [inner] = [e for e in robust.expectations if isinstance(e, Range)]
    assert exact.min < inner.min and inner.max < exact.max  # type: ignore[operator]
    few = infer_suite(acs[["SCHL", "SEX"]], max_categories=5)
    assert [e.target for e in few.expectations if e.rule == "categories"] == ["SEX"]
    for bad in ({"range_slack": -1}, {"range_slack": "wide"}, {"range_quantiles": (0.9, 0.1)},
                {"max_categories": -2}):  # fmt: skip
        with pytest.raises(InvalidArgumentError) as info:
            infer_suite(acs, **bad)
        assert info.value.details["parameter"] == next(iter(bad))


def test_ranges_keep_non_negative_columns_non_negative() -> None:
    frame = pd.DataFrame({"count": [0, 3, 10], "delta": [-5.0, 0.0, 5.0]})
    ranges = {
        e.column: (e.min, e.max) for e in infer_suite(frame).expectations if isinstance(e, Range)
    }
    assert ranges == {"count": (0, 11), "delta": (-6.0, 6.0)}


def test_every_input_form(ctx: Context, acs: pd.DataFrame, suite: Suite, tmp_path: Path) -> None:
    small = acs.head(50)
    version = lw.log_dataset(small, name="acs")
    small.to_parquet(tmp_path / "acs.parquet")
    small.to_csv(tmp_path / "acs.csv", index=False)
    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text(suite.to_yaml())
    for data in (small, pa.Table.from_pandas(small), version, "acs", "acs/1",
                 tmp_path / "acs.parquet", str(tmp_path / "acs.parquet")):  # fmt: skip
        assert validate(data, suite_file).ok, data
    # CSV loses the categorical dtype (codes read back as integers): that is a type change.
    from_csv = validate(tmp_path / "acs.csv", suite)
    assert ("SCHL", "type") in _only(from_csv)
    with pytest.raises(InvalidArgumentError, match="Expected a pandas DataFrame") as info:
        validate([{"AGEP": 3}], suite)
    assert info.value.details["parameter"] == "data"
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        validate(small, tmp_path / "missing.yaml")
    with pytest.raises(InvalidArgumentError, match="Expected a Suite"):
        validate(small, {"expectations": []})  # type: ignore[arg-type]


def test_duplicate_column_names_are_refused() -> None:
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(InvalidArgumentError, match=r"distinct column names, got \['a'\]"):
        Suite([NotNull(column="a")]).validate(frame)


def test_a_hand_built_suite_with_bad_parameters_is_refused() -> None:
    suite = Suite([Range(column="x", min="abc"), ColumnType(column="x", type="text")])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError) as info:
        suite.validate(pd.DataFrame({"x": [1]}))
    assert info.value.details["problems"] == [
        "expectations[0].min: expected a number, got 'abc'",
        "expectations[1].type: expected one of ['integer', 'float', 'string', 'category', "
        "'bool', 'datetime'], got 'text'",
    ]


def test_report_as_frame_and_summary(acs: pd.DataFrame, suite: Suite) -> None:
    report = suite.validate(acs.assign(AGEP=acs["AGEP"] * 12).drop(columns=["MAR"]))
    frame = report.to_frame()
    assert list(frame.columns) == [
        "column",
        "rule",
        "severity",
        "expected",
        "observed",
        "failing_rows",
    ]
    assert frame[["column", "rule"]].values.tolist() == [
        ["AGEP", "range"],
        ["MAR", "column_present"],
    ]
    assert report.summary().splitlines()[0].startswith("error: column 'AGEP' [range] expected")
    assert suite.validate(acs).to_frame().empty
