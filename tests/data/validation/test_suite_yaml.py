"""The YAML form of a suite: round trips, hand edits, and errors that name their path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from loopwise.data import Range, Suite, infer_suite
from loopwise.errors import InvalidArgumentError
from loopwise.examples import load_acs


@pytest.fixture(scope="module")
def acs() -> pd.DataFrame:
    return load_acs().sample(2000, random_state=3).reset_index(drop=True)


def _problems(text: str) -> list[str]:
    with pytest.raises(InvalidArgumentError) as info:
        Suite.from_yaml(text)
    assert info.value.details["parameter"] == "text"
    problems: list[str] = info.value.details["problems"]
    for problem in problems:
        assert problem in info.value.message
    return problems


def test_round_trip_gives_the_same_suite_and_findings(acs: pd.DataFrame) -> None:
    suite = infer_suite(acs)
    suite.expectations.append(Range(column="employed", min=0, max=0.5, severity="warning"))
    text = suite.to_yaml()
    back = Suite.from_yaml(text)
    assert back == suite
    assert back.to_yaml() == text
    broken = acs.assign(AGEP=acs["AGEP"] * 12, SEX=acs["SEX"].astype(str)).drop(columns=["MAR"])
    broken.loc[0, "SEX"] = "x"
    broken.loc[1, "RAC1P"] = np.nan
    assert back.validate(broken) == suite.validate(broken)
    assert len(suite.validate(broken).findings) == 5


def test_the_document_is_readable(acs: pd.DataFrame) -> None:
    text = infer_suite(acs[["AGEP", "SEX"]]).to_yaml()
    assert text.startswith("# A Loopwise validation suite")
    document = yaml.safe_load(text)
    assert document["version"] == 1
    assert {"rule": "range", "column": "AGEP", "min": 0.0, "max": 104.5} in document["expectations"]
    assert {"rule": "categories", "column": "SEX", "values": ["1", "2"]} in document["expectations"]
    assert "- {rule: not_null, column: AGEP}\n" in text  # one line per rule where it fits
    assert "severity" not in text  # defaults are left out


def test_a_hand_written_suite() -> None:
    suite = Suite.from_yaml(
        """
version: 1
expectations:
  - {rule: row_count, min: 1, max: 1000}
  - rule: range
    column: AGEP
    min: 16
    max: .inf          # open on top
    severity: warning
  - {rule: categories, column: SEX, values: [1, 2]}
  - {rule: mean, column: AGEP, min: 20, max: 60}
"""
    )
    report = suite.validate(pd.DataFrame({"AGEP": [15.0, 30.0], "SEX": ["1", "3"]}))
    assert [(f.rule, f.severity) for f in report.findings] == [
        ("range", "warning"),
        ("categories", "error"),
    ]


def test_every_problem_is_reported_with_its_path() -> None:
    problems = _problems(
        """
version: 1
expectations:
  - {rule: row_count, min: 1}
  - {rule: type, column: AGEP, type: text}
  - {rule: not_null}
  - {rule: range, column: AGEP, max: abc}
  - {rule: range, column: AGEP, min: 10, max: 1}
  - {rule: rnage, column: AGEP}
  - {rule: unique, column: id, maxx: 3}
  - {rule: custom, name: mine}
  - {rule: not_null, column: x, severity: fatal}
  - just a string
  - {rule: categories, column: SEX, values: 1}
"""
    )
    assert problems == [
        "expectations[1].type: expected one of ['integer', 'float', 'string', 'category', "
        "'bool', 'datetime'], got 'text'",
        "expectations[2].column: missing; rule 'not_null' needs it",
        "expectations[3].max: expected a number, got 'abc'",
        "expectations[4].min: expected at most max (1), got 10",
        "expectations[5].rule: expected one of ['categories', 'column_present', 'finite', "
        "'mean', 'not_null', 'range', 'row_count', 'type', 'unique'], got 'rnage'",
        "expectations[6].maxx: unknown parameter for rule 'unique'; expected one of "
        "['column', 'severity']",
        "expectations[7].rule: custom checks are Python functions and cannot live in YAML; add "
        "them in code: suite.expectations.append(Custom(name=..., fn=...))",
        "expectations[8].severity: expected one of ['error', 'warning', 'info'], got 'fatal'",
        "expectations[9]: expected a mapping like {rule: range, ...}, got 'just a string'",
        "expectations[10].values: expected a list, got 1",
    ]


def test_document_level_problems() -> None:
    assert _problems("version: 2\nexpectations: []\nextra: 1\n") == [
        "unknown top-level key(s) ['extra']; expected 'version', 'expectations'",
        "version: expected 1, got 2; this Loopwise reads suites of format version 1",
    ]
    assert _problems("- rule: range\n")[0].startswith("expected a mapping with keys")
    assert _problems("version: 1\n")[-1] == "expectations: expected a list of rules, got None"


def test_text_that_is_not_yaml_names_the_line() -> None:
    with pytest.raises(InvalidArgumentError, match="at line 4, column 6"):
        Suite.from_yaml("version: 1\nexpectations:\n  - {rule: range\n  - x: [\n")
    with pytest.raises(InvalidArgumentError, match="as a string"):
        Suite.from_yaml(b"version: 1")  # type: ignore[arg-type]
