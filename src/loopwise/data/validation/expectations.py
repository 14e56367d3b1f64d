"""Expectations: small typed checks on a DataFrame, each returning the findings it can prove.

Every expectation names its ``rule``, the column it applies to (``None`` for the whole table)
and its parameters; ``check(frame)`` never stops at the first bad row and never raises on bad
data — broken data is what it exists to describe. The column rules live in ``column_rules``.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from loopwise.data.validation.column_types import ColumnData, plain_value

__all__ = [
    "ColumnExpectation",
    "Custom",
    "Expectation",
    "Finding",
    "RowCount",
    "Severity",
    "bounds_text",
    "counted_text",
    "example_rows",
    "fmt_number",
]

Severity = Literal["error", "warning", "info"]
MAX_EXAMPLES = 5
MAX_LISTED = 10


@dataclass(frozen=True)
class Finding:
    """One violation: where (column, or None for the table), which rule, what was expected,
    what was observed, how many rows fail, and up to five of them as examples."""

    column: str | None
    rule: str
    expected: str
    observed: str
    severity: Severity = "error"
    failing_rows: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "rule": self.rule,
            "severity": self.severity,
            "expected": self.expected,
            "observed": self.observed,
            "failing_rows": self.failing_rows,
            "examples": [{str(k): plain_value(v) for k, v in row.items()} for row in self.examples],
        }


def example_rows(frame: pd.DataFrame, mask: np.ndarray[Any, Any]) -> list[dict[str, Any]]:
    """Up to five failing rows as dicts (row by row: far faster than a sub-frame's to_dict)."""
    positions = np.flatnonzero(mask)[:MAX_EXAMPLES]
    rows = [frame.iloc[int(p)].to_dict() for p in positions]
    return [{str(k): plain_value(v) for k, v in row.items()} for row in rows]


def fmt_number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def bounds_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"between {fmt_number(low)} and {fmt_number(high)}"
    if low is not None:
        return f"at least {fmt_number(low)}"
    return f"at most {fmt_number(high)}" if high is not None else "any value"


def counted_text(counts: pd.Series) -> str:
    counts = counts[counts > 0]  # a categorical's value_counts lists unused categories too
    shown = ", ".join(
        f"{k!r} ({n} row{'s' if n != 1 else ''})" for k, n in counts[:MAX_LISTED].items()
    )
    more = len(counts) - MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


@dataclass(frozen=True, kw_only=True)
class Expectation:
    """Base of every rule. Subclasses are frozen dataclasses whose fields are the parameters
    written to YAML; constructors only store them, :meth:`problems` says what is wrong."""

    rule: ClassVar[str] = ""
    severity: Severity = "error"

    @property
    def target(self) -> str | None:
        """The column the expectation is about; None for the table."""
        return None

    def check(self, frame: pd.DataFrame) -> list[Finding]:
        raise NotImplementedError

    def problems(self) -> list[tuple[str, str]]:
        """``(parameter, message)`` for each parameter of the wrong type or out of range."""
        found: list[tuple[str, str]] = []
        for name, hint in _hints(type(self)).items():
            message = _type_problem(getattr(self, name), hint)
            if message:
                found.append((name, message))
        return found

    def finding(self, expected: str, observed: str, **extra: Any) -> Finding:
        return Finding(
            column=self.target,
            rule=self.rule,
            expected=expected,
            observed=observed,
            severity=self.severity,
            **extra,
        )


@dataclass(frozen=True, kw_only=True)
class ColumnExpectation(Expectation):
    """An expectation about one column; a missing column is reported once, by the suite."""

    column: str

    @property
    def target(self) -> str | None:
        return self.column

    def check(self, frame: pd.DataFrame) -> list[Finding]:
        if self.column not in frame.columns:
            return [
                Finding(self.column, "column_present", "column present", "column is missing",
                        self.severity)
            ]  # fmt: skip
        return self.check_column(frame, ColumnData(frame[self.column]))

    def check_column(self, frame: pd.DataFrame, data: ColumnData) -> list[Finding]:
        raise NotImplementedError

    def skipped(self, family: str, needs: str) -> list[Finding]:
        """A check that cannot run on this type is noted (severity info), not failed twice: the
        type rule already reports the change."""
        return [
            Finding(self.column, self.rule, needs, f"skipped: the column holds {family} values",
                    "info")
        ]  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class RowCount(Expectation):
    """The number of rows within ``[min, max]``."""

    rule: ClassVar[str] = "row_count"
    min: int | None = None
    max: int | None = None

    def problems(self) -> list[tuple[str, str]]:
        found = super().problems()
        if not found and self.min is not None and self.max is not None and self.min > self.max:
            found.append(("min", f"expected at most max ({self.max}), got {self.min}"))
        return found

    def check(self, frame: pd.DataFrame) -> list[Finding]:
        rows = len(frame)
        if (self.min is None or rows >= self.min) and (self.max is None or rows <= self.max):
            return []
        return [self.finding(f"a row count {bounds_text(self.min, self.max)}", f"{rows} rows")]


@dataclass(frozen=True)  # positional on purpose: Custom("name", fn)
class Custom(Expectation):
    """A check written in Python: ``fn(frame)`` returns True (pass), False (fail), or the index
    labels of the failing rows. It cannot be written to YAML: add it in code after loading."""

    rule: ClassVar[str] = "custom"
    name: str
    fn: Callable[[pd.DataFrame], bool | Iterable[Hashable]]
    column: str | None = None

    @property
    def target(self) -> str | None:
        return self.column

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if not isinstance(self.name, str) or not self.name:
            found.append(("name", f"expected a non-empty string, got {self.name!r}"))
        if not callable(self.fn):
            found.append(("fn", f"expected a function of the frame, got {type(self.fn).__name__}"))
        return found

    def check(self, frame: pd.DataFrame) -> list[Finding]:
        rule, expected = f"custom:{self.name}", f"{self.name} passes"
        try:
            result = self.fn(frame)
        except Exception as exc:  # a user's function: its failure is a finding, not a crash
            observed = f"the check raised {type(exc).__name__}: {exc}"
            return [Finding(self.column, rule, expected, observed, self.severity)]
        if isinstance(result, (bool, np.bool_)):
            return [] if result else [Finding(self.column, rule, expected, "failed", self.severity)]
        if isinstance(result, (str, bytes, pd.Series, np.ndarray)) or not isinstance(
            result, Iterable
        ):
            observed = (
                f"the check returned {type(result).__name__}; expected True/False or a list of "
                "the failing rows' index labels"
            )
            return [Finding(self.column, rule, expected, observed, self.severity)]
        labels = list(result)
        if not labels:
            return []
        positions = frame.index.get_indexer(pd.Index(labels).unique())
        mask = np.zeros(len(frame), dtype=bool)
        mask[positions[positions >= 0]] = True
        observed = f"{len(labels)} failing rows"
        return [
            Finding(self.column, rule, expected, observed, self.severity, failing_rows=len(labels),
                    examples=example_rows(frame, mask))
        ]  # fmt: skip


_HINTS: dict[type[Expectation], dict[str, Any]] = {}


def _hints(cls: type[Expectation]) -> dict[str, Any]:
    """Each parameter's annotation, resolved once per class."""
    if cls not in _HINTS:
        hints = typing.get_type_hints(cls)
        _HINTS[cls] = {f.name: hints[f.name] for f in fields(cls)}
    return _HINTS[cls]


def _type_problem(value: Any, hint: Any) -> str | None:
    """Why ``value`` does not fit the annotation ``hint`` (the few kinds parameters use)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        problems = [_type_problem(value, o) for o in options if o is not type(None)]
        if all(problems):
            return problems[0] if len(problems) == 1 else _expected(options, value)
        return None
    if origin is Literal:
        allowed = typing.get_args(hint)
        return None if value in allowed else f"expected one of {list(allowed)}, got {value!r}"
    if origin is list:
        if not isinstance(value, list):
            return f"expected a list, got {value!r}"
        for i, item in enumerate(value):
            problem = _type_problem(item, typing.get_args(hint)[0])
            if problem:
                return f"item {i}: {problem}"
        return None
    ok = {
        str: lambda v: isinstance(v, str),
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v == v,
    }.get(hint)
    if ok is None or ok(value):
        return None
    return _expected((hint,), value)


def _expected(options: tuple[Any, ...], value: Any) -> str:
    words = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    names = [words.get(o, getattr(o, "__name__", str(o))) for o in options if o is not type(None)]
    if type(None) in options:
        names.append("null")
    return f"expected {' or '.join(names)}, got {value!r}"
