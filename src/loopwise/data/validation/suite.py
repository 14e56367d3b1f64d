"""Validation suites: expectations inferred from a dataset, edited as YAML, checked on new data.

``infer_suite`` learns types, nullability, ranges (with slack) and categories from a dataset;
``validate`` checks a dataset or a batch of serving inputs and returns every violation.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from loopwise.data.chunks import check_column_names
from loopwise.data.kinds import ColumnKind, type_family_kind
from loopwise.data.tables import READERS, read_table
from loopwise.data.validation.column_rules import (
    AllowedCategories,
    ColumnPresent,
    ColumnType,
    Finite,
    NotNull,
    Range,
    Unique,
)
from loopwise.data.validation.column_types import ColumnData, type_family
from loopwise.data.validation.expectations import ColumnExpectation, Expectation, Finding, RowCount
from loopwise.data.validation.suite_yaml import expectations_from_yaml, expectations_to_yaml
from loopwise.data.versions import load_dataset
from loopwise.errors import InvalidArgumentError
from loopwise.store import DatasetVersion

__all__ = ["Suite", "ValidationReport", "infer_suite", "validate"]

UNIQUE_MIN_ROWS = 100
"""``unique`` is inferred only from at least this many rows: fewer prove nothing."""


@dataclass(frozen=True)
class ValidationReport:
    """Every finding of one validation; ``ok`` when none has severity "error"."""

    findings: list[Finding]
    num_rows: int
    num_expectations: int

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "num_rows": self.num_rows,
            "num_expectations": self.num_expectations,
            "findings": [f.to_dict() for f in self.findings],
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per finding (no rows when the data passed)."""
        columns = ["column", "rule", "severity", "expected", "observed", "failing_rows"]
        rows = [[getattr(f, c) for c in columns] for f in self.findings]
        return pd.DataFrame(rows, columns=columns)

    def summary(self, max_findings: int = 5) -> str:
        """One line per finding (errors first), for messages and logs."""
        if not self.findings:
            return f"{self.num_rows} rows passed {self.num_expectations} expectations"
        order = {"error": 0, "warning": 1, "info": 2}
        shown = sorted(self.findings, key=lambda f: order[f.severity])[:max_findings]
        lines = [
            f"{f.severity}: {'column ' + repr(f.column) if f.column else 'table'} [{f.rule}] "
            f"expected {f.expected}, observed {f.observed}"
            for f in shown
        ]
        more = len(self.findings) - len(shown)
        if more:
            lines.append(f"… and {more} more finding(s)")
        return "\n".join(lines)


@dataclass
class Suite:
    """A list of expectations. Built by :func:`infer_suite`, from YAML, or by hand."""

    expectations: list[Expectation] = field(default_factory=list)
    _checked: tuple[int, ...] = field(default=(), init=False, repr=False, compare=False)

    def to_yaml(self, *, drop_custom: bool = False) -> str:
        """The suite as a YAML document; custom checks are refused unless ``drop_custom``."""
        self._check_expectations()
        return expectations_to_yaml(self.expectations, drop_custom=drop_custom)

    @classmethod
    def from_yaml(cls, text: str) -> Suite:
        return cls(expectations_from_yaml(text))

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Suite:
        """A suite from a YAML file."""
        file = Path(path)
        if not file.is_file():
            raise InvalidArgumentError(
                f"Expected a path to a suite YAML file, got {str(file)!r}, which does not exist. "
                "Write one with: loopwise data suite infer DATA --output suite.yaml",
                parameter="suite",
            )
        return cls.from_yaml(file.read_text())

    def validate(self, data: Any) -> ValidationReport:
        """Check ``data`` against every expectation; never stops at the first violation."""
        self._check_expectations()
        frame = _frame(data)
        findings: list[Finding] = []
        missing: set[str] = set()
        present = {e.column: e for e in self.expectations if isinstance(e, ColumnPresent)}
        columns: dict[str, ColumnData] = {}
        for expectation in self.expectations:
            if not isinstance(expectation, ColumnExpectation):
                findings.extend(expectation.check(frame))
                continue
            name = expectation.column
            if name not in frame.columns:
                if name not in missing:  # one finding per missing column, not one per rule
                    missing.add(name)
                    findings.extend(present.get(name, expectation).check(frame))
                continue
            if name not in columns:
                columns[name] = ColumnData(frame[name])
            findings.extend(expectation.check_column(frame, columns[name]))
        return ValidationReport(findings, len(frame), len(self.expectations))

    def _check_expectations(self) -> None:
        """Programmatic suites get the same checks as YAML ones (once per list of rules)."""
        ids = tuple(map(id, self.expectations))
        if ids == self._checked:
            return
        problems: list[str] = []
        for i, expectation in enumerate(self.expectations):
            if not isinstance(expectation, Expectation):
                problems.append(f"expectations[{i}]: expected an Expectation, got {expectation!r}")
                continue
            problems.extend(f"expectations[{i}].{k}: {m}" for k, m in expectation.problems())
        if problems:
            raise InvalidArgumentError(
                f"The suite has {len(problems)} invalid expectation(s): {'; '.join(problems)}. "
                "Fix their parameters.",
                parameter="suite",
                problems=problems,
            )
        self._checked = ids


def validate(data: Any, suite: Suite | str | os.PathLike[str]) -> ValidationReport:
    """Check ``data`` (DataFrame, Arrow table, Parquet/CSV path, dataset ref or version)
    against ``suite`` (a :class:`Suite` or a path to its YAML file)."""
    if isinstance(suite, (str, os.PathLike)):
        suite = Suite.read(suite)
    if not isinstance(suite, Suite):
        raise InvalidArgumentError(
            f"Expected a Suite or a path to a suite YAML file, got {type(suite).__name__}. "
            "Build one with infer_suite(data) or Suite.from_yaml(text).",
            parameter="suite",
        )
    return suite.validate(data)


def infer_suite(
    data: Any,
    *,
    range_slack: float = 0.1,
    range_quantiles: tuple[float, float] = (0.0, 1.0),
    max_categories: int = 50,
) -> Suite:
    """Expectations that ``data`` itself passes, loose enough for new data from the same source.

    * every column: present, its type family, and not null when it has no nulls;
    * numbers: a range from the ``range_quantiles`` of the data, widened on each side by
      ``range_slack`` times its width (not below 0 for a column that has no negative values;
      integers rounded outwards); floats also must be finite when they are;
    * strings and categoricals with at most ``max_categories`` distinct values: those values;
    * integer and string columns whose values are all distinct (in at least 100 rows): unique;
    * the table: at least one row.
    """
    _check_inference_options(range_slack, range_quantiles, max_categories)
    frame = _frame(data)
    if len(frame) == 0:
        raise InvalidArgumentError(
            "Expected data with at least one row to infer a suite from, got 0 rows. Pass the "
            "dataset the model was trained on.",
            parameter="data",
        )
    check_column_names(frame)
    expectations: list[Expectation] = [RowCount(min=1)]
    for name in frame.columns:
        series = frame[name]
        family = type_family(series)
        expectations.append(ColumnPresent(column=name))
        if family in ("mixed", "null"):
            continue  # no type to learn; presence is all that can be said
        expectations.append(ColumnType(column=name, type=family))  # type: ignore[arg-type]
        if not series.isna().any():
            expectations.append(NotNull(column=name))
        kind = type_family_kind(family)
        if kind is ColumnKind.NUMERIC:
            expectations.extend(_numeric(name, series, family, range_slack, range_quantiles))
        elif kind is ColumnKind.CATEGORICAL and family != "bool":  # its type names its values
            uniques = series.dropna().unique()
            if len(uniques) <= max_categories:
                values = sorted((_plain_category(v) for v in uniques), key=_natural)
                expectations.append(AllowedCategories(column=name, values=values))
        if (
            family in ("integer", "string")
            and len(frame) >= UNIQUE_MIN_ROWS
            and not series.dropna().duplicated().any()
        ):
            expectations.append(Unique(column=name))
    return Suite(expectations)


def _numeric(
    name: str,
    series: pd.Series,
    family: str,
    slack: float,
    quantiles: tuple[float, float],
) -> list[Expectation]:
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    finite = values[np.isfinite(values)]
    found: list[Expectation] = []
    if family == "float" and len(finite) == np.count_nonzero(~np.isnan(values)):
        found.append(Finite(column=name))
    if len(finite) == 0:
        return found
    low, high = (float(q) for q in np.quantile(finite, quantiles))
    pad = slack * (high - low) if high > low else slack * abs(high)
    lowest = low - pad if low < 0 else max(low - pad, 0.0)
    highest = high + pad
    if family == "integer":
        found.append(Range(column=name, min=math.floor(lowest), max=math.ceil(highest)))
    else:
        found.append(
            Range(column=name, min=_round(lowest, math.floor), max=_round(highest, math.ceil))
        )
    return found


def _round(value: float, direction: Any) -> float:
    """Six significant digits, rounded outwards: readable in YAML, never tighter."""
    if value == 0 or not math.isfinite(value):
        return value
    scale = 10.0 ** (5 - math.floor(math.log10(abs(value))))
    return float(direction(value * scale) / scale)


def _plain_category(value: Any) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    return value if isinstance(value, (str, int, float, bool)) else str(value)


def _natural(value: Any) -> tuple[int, float, str]:
    """Numbers (and numeric strings, like ACS codes) in numeric order, then text."""
    text = str(value)
    try:
        return (0, float(value), text)
    except (TypeError, ValueError):
        return (1, 0.0, text)


def _check_inference_options(range_slack: Any, range_quantiles: Any, max_categories: Any) -> None:
    if (
        isinstance(range_slack, bool)
        or not isinstance(range_slack, (int, float))
        or not (0 <= range_slack < math.inf)
    ):
        raise InvalidArgumentError(
            f"Expected range_slack to be a number >= 0 (0.1 widens each range by 10% of its "
            f"width on each side), got {range_slack!r}.",
            parameter="range_slack",
        )
    if not (
        isinstance(range_quantiles, tuple)
        and len(range_quantiles) == 2
        and all(isinstance(q, (int, float)) and not isinstance(q, bool) for q in range_quantiles)
        and 0 <= range_quantiles[0] < range_quantiles[1] <= 1
    ):
        raise InvalidArgumentError(
            f"Expected range_quantiles to be a pair (low, high) with 0 <= low < high <= 1, e.g. "
            f"(0.001, 0.999) to ignore outliers, got {range_quantiles!r}.",
            parameter="range_quantiles",
        )
    if (
        isinstance(max_categories, bool)
        or not isinstance(max_categories, int)
        or max_categories < 0
    ):
        raise InvalidArgumentError(
            f"Expected max_categories to be an integer >= 0, got {max_categories!r}.",
            parameter="max_categories",
        )


def _frame(data: Any) -> pd.DataFrame:
    """The data to check as a DataFrame: a frame as given, tables converted, files read and
    dataset refs loaded from the store."""
    if isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, (pa.Table, pa.RecordBatch)):
        frame = data.to_pandas()
    elif isinstance(data, DatasetVersion):
        frame = load_dataset(data)
    elif isinstance(data, os.PathLike) or (
        isinstance(data, str) and Path(data).suffix.lower() in READERS
    ):
        frame = read_table(data).to_pandas()
    elif isinstance(data, str):
        frame = load_dataset(data)
    else:
        raise InvalidArgumentError(
            "Expected a pandas DataFrame, a pyarrow Table, a Parquet/CSV path, a dataset ref "
            f"('acs-ma/3') or a DatasetVersion, got {type(data).__name__}. Wrap records in "
            "pandas.DataFrame(records).",
            parameter="data",
        )
    if not frame.columns.is_unique:
        duplicated = frame.columns[frame.columns.duplicated()].unique().tolist()
        raise InvalidArgumentError(
            f"Expected distinct column names, got {duplicated!r} more than once. Rename or drop "
            "the duplicates before validating.",
            parameter="data",
        )
    return frame
