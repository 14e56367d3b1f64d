"""Suites attached to dataset names: stored in the project, warn or fail on new data."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from loopwise.context import Context
from loopwise.data import (
    Custom,
    Suite,
    attach_suite,
    attached_suite,
    detach_suite,
    infer_suite,
    list_datasets,
    log_dataset,
)
from loopwise.data.validation.attached_suites import check_attached_suite
from loopwise.errors import (
    HTTP_STATUS,
    InvalidArgumentError,
    NotFoundError,
    ValidationFailedError,
    ValidationWarning,
    error_from_dict,
)

GOOD = pd.DataFrame({"age": [31.0, 45.0, 22.0], "state": ["MA", "NY", "MA"]})
MONTHS = GOOD.assign(age=GOOD["age"] * 12)


def test_attach_show_detach(ctx: Context) -> None:
    suite = infer_suite(GOOD)
    assert attached_suite("people") is None
    attach_suite("people", suite)
    assert attached_suite("people") == (suite, "warn")
    attach_suite("people", suite, on_failure="fail")  # replaces
    assert attached_suite("people") == (suite, "fail")
    detach_suite("people")
    assert attached_suite("people") is None
    with pytest.raises(NotFoundError):
        detach_suite("people")


def test_no_suite_attached_means_no_check(ctx: Context) -> None:
    assert check_attached_suite("people", MONTHS) is None


def test_warn_returns_the_report_and_warns(ctx: Context) -> None:
    attach_suite("people", infer_suite(GOOD), on_failure="warn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = check_attached_suite("people", GOOD)
    assert report is not None and report.ok

    with pytest.warns(ValidationWarning, match=r"column 'age' \[range\]") as caught:
        version = log_dataset(MONTHS, name="people")
    assert version.num_rows == len(MONTHS)  # warned, and kept
    assert caught[0].filename == __file__  # points at the user's call, not into Loopwise


def test_log_dataset_refuses_data_that_fails_and_stores_nothing(ctx: Context) -> None:
    attach_suite("people", infer_suite(GOOD), on_failure="fail")
    assert log_dataset(GOOD, name="people").version == 1
    with pytest.raises(ValidationFailedError, match=r"column 'age' \[range\]"):
        log_dataset(MONTHS, name="people")
    assert [v.version for v in list_datasets("people")] == [1]


def test_fail_raises_with_the_findings(ctx: Context) -> None:
    attach_suite("people", infer_suite(GOOD), on_failure="fail")
    with pytest.raises(ValidationFailedError, match="on_failure='fail'") as info:
        check_attached_suite("people", MONTHS.drop(columns=["state"]))
    error = info.value
    assert isinstance(error, InvalidArgumentError)
    assert error.code == "validation_failed" and HTTP_STATUS[error.code] == 422
    assert [(f["column"], f["rule"]) for f in error.details["findings"]] == [
        ("age", "range"),
        ("state", "column_present"),
    ]
    rebuilt = error_from_dict(error.to_dict(), 422)
    assert type(rebuilt) is ValidationFailedError and rebuilt.details == error.details


def test_warning_findings_only_warn_even_on_fail(ctx: Context) -> None:
    suite = Suite.from_yaml(
        "version: 1\nexpectations:\n  - {rule: range, column: age, max: 50, severity: warning}\n"
    )
    attach_suite("people", suite, on_failure="fail")
    with pytest.warns(ValidationWarning):
        report = check_attached_suite("people", MONTHS)
    assert report is not None and report.ok


def test_bad_arguments(ctx: Context) -> None:
    suite = infer_suite(GOOD)
    with pytest.raises(InvalidArgumentError) as info:
        attach_suite("people", suite, on_failure="ignore")  # type: ignore[arg-type]
    assert info.value.details["parameter"] == "on_failure"
    with pytest.raises(InvalidArgumentError) as info:
        attach_suite("people", suite.to_yaml())  # type: ignore[arg-type]
    assert info.value.details["parameter"] == "suite"
    with pytest.raises(InvalidArgumentError, match="custom checks"):
        attach_suite("people", Suite([Custom(name="mine", fn=lambda f: True)]))
    with pytest.raises(InvalidArgumentError, match="dataset name"):
        attach_suite("no spaces", suite)
    assert attached_suite("people") is None
