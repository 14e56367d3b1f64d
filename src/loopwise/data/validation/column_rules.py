"""The built-in rules about one column: presence, type, nulls, range, finiteness, categories,
uniqueness and the mean of a batch."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np
import pandas as pd

from loopwise.data.kinds import ColumnKind
from loopwise.data.validation.column_types import ACCEPTS, ColumnData, TypeName, category_key
from loopwise.data.validation.expectations import (
    ColumnExpectation,
    Finding,
    bounds_text,
    counted_text,
    example_rows,
    fmt_number,
)

__all__ = [
    "AllowedCategories",
    "ColumnPresent",
    "ColumnType",
    "Finite",
    "MeanBetween",
    "NotNull",
    "Range",
    "Unique",
]


@dataclass(frozen=True, kw_only=True)
class ColumnPresent(ColumnExpectation):
    rule: ClassVar[str] = "column_present"

    def check_column(self, frame: pd.DataFrame, data: ColumnData) -> list[Finding]:
        return []


@dataclass(frozen=True, kw_only=True)
class ColumnType(ColumnExpectation):
    """The column's type family; whole-number floats pass as integers."""

    rule: ClassVar[str] = "type"
    type: TypeName

    def check_column(self, frame: pd.DataFrame, data: ColumnData) -> list[Finding]:
        if data.family in ACCEPTS[self.type]:
            return []
        if self.type == "integer" and data.family == "float":
            values = data.numbers
            with np.errstate(invalid="ignore"):
                bad = ~np.isnan(values) & (~np.isfinite(values) | (values != np.floor(values)))
            if not bad.any():
                return []
            return [
                self.finding(
                    "integer",
                    f"float ({data.series.dtype}) with {int(bad.sum())} non-whole values, "
                    f"e.g. {fmt_number(float(values[bad][0]))}",
                    failing_rows=int(bad.sum()),
                    examples=example_rows(frame, bad),
                )
            ]
        present = ~data.nulls
        return [
            self.finding(
                self.type,
                f"{data.family} ({data.series.dtype})",
                failing_rows=int(present.sum()),
                examples=example_rows(frame, present),
            )
        ]


@dataclass(frozen=True, kw_only=True)
class NotNull(ColumnExpectation):
    """No nulls (NaN, None, NaT count as null), or at most ``max_null_fraction`` of the rows."""

    rule: ClassVar[str] = "not_null"
    max_null_fraction: float = 0.0

    def problems(self) -> list[tuple[str, str]]:
        found = super().problems()
        if not found and not 0.0 <= self.max_null_fraction <= 1.0:
            found.append(("max_null_fraction", f"expected 0 to 1, got {self.max_null_fraction}"))
        return found

    def check_column(self, frame: pd.DataFrame, data: ColumnData) -> list[Finding]:
        nulls = data.nulls
        count, rows = int(nulls.sum()), len(nulls)
        if count == 0 or count / rows <= self.max_null_fraction:
            return []
        expected = (
            "no nulls"
            if self.max_null_fraction == 0
            else f"at most {self.max_null_fraction:.1%} nulls"
        )
        return [
            self.finding(
                expected,
                f"{count} of {rows} rows null ({count / rows:.1%})",
                failing_rows=count,
                examples=example_rows(frame, nulls),
            )
        ]


@dataclass(frozen=True, kw_only=True)
class _Bounded(ColumnExpectation):
    min: float | None = None
    max: float | None = None

    def problems(self) -> list[tuple[str, str]]:
        found = super().problems()
        if not found and self.min is not None and self.max is not None and self.min > self.max:
            found.append(("min", f"expected at most max ({self.max:g}), got {self.min:g}"))
        return found


@dataclass(frozen=True, kw_only=True)
class Range(_Bounded):
    """Every non-null value within ``[min, max]`` (inclusive; either side may be open).
    Infinities are compared like any number, so +inf breaks a finite ``max``."""

    rule: ClassVar[str] = "range"

    def check_column(self, frame: pd.DataFrame, data: ColumnData) -> list[Finding]:
        if data.family == "null":
            return []
        if data.kind is not ColumnKind.NUMERIC:
            return self.skipped(data.family, f"numbers {bounds_text(self.min, self.max)}")
        values = data.numbers
        bad = np.zeros(len(values), dtype=bool)
        if self.min is not None:
            bad |= values < self.min
        if self.max is not None:
            bad |= values > self.max
        if not bad.any():
            return []
        outside = values[bad]
        return [
            self.finding(
                bounds_text(self.min, self.max),
                f"{len(outside)} of {len(values)} values outside, from {fmt_number(float(outside.min()))}"
                f" to {fmt_number(float(outside.max()))}",
                failing_rows=len(outside),
                examples=example_rows(frame, bad),
            )
        ]


@dataclass(frozen=True, kw_only=True)
class Finite(ColumnExpectation):
    """No +inf or -inf (NaN is a null: :class:`NotNull` covers it)."""

    rule: ClassVar[str] = "finite"

    def check_column(self, frame: pd.DataFrame, data: ColumnData) -> list[Finding]:
        if data.family in ("integer", "null"):
            return []
        if data.family != "float":
            return self.skipped(data.family, "finite numbers")
        bad = np.isinf(data.numbers)
        if not bad.any():
            return []
        return [
            self.finding(
                "finite numbers",
                f"{int(bad.sum())} infinite values",
                failing_rows=int(bad.sum()),
                examples=example_rows(frame, bad),
            )
        ]


@dataclass(frozen=True, kw_only=True)
class AllowedCategories(ColumnExpectation):
    """Every non-null value among ``values`` (compared as text: 16, 16.0 and "16" are equal)."""

    rule: ClassVar[str] = "categories"
    values: list[str | int | float | bool]

    @cached_property
    def _allowed(self) -> frozenset[str]:
        return frozenset(category_key(v) for v in self.values)

    def check_column(self, frame: pd.DataFrame, data: ColumnData) -> list[Finding]:
        unseen = [v for v in data.uniques if category_key(v) not in self._allowed]
        if not unseen:
            return []
        bad = data.series.isin(unseen).to_numpy() & ~data.nulls
        counts = data.series[bad].map(category_key).value_counts()
        return [
            self.finding(
                f"one of {len(self.values)} known values",
                f"unseen values: {counted_text(counts)}",
                failing_rows=int(bad.sum()),
                examples=example_rows(frame, bad),
            )
        ]


@dataclass(frozen=True, kw_only=True)
class Unique(ColumnExpectation):
    """No non-null value appears twice."""

    rule: ClassVar[str] = "unique"

    def check_column(self, frame: pd.DataFrame, data: ColumnData) -> list[Finding]:
        if len(data.uniques) == len(data.nulls) - int(data.nulls.sum()):
            return []
        bad = data.series.duplicated(keep=False).to_numpy() & ~data.nulls
        counts = data.series[bad].map(category_key).value_counts()
        return [
            self.finding(
                "unique values",
                f"{len(counts)} values repeated: {counted_text(counts)}",
                failing_rows=int(bad.sum()),
                examples=example_rows(frame, bad),
            )
        ]


@dataclass(frozen=True, kw_only=True)
class MeanBetween(_Bounded):
    """The mean of the batch given lies within ``[min, max]``. For serving inputs, validate
    the batch of one time window (an hour of requests, say): the mean is over that batch."""

    rule: ClassVar[str] = "mean"

    def check_column(self, frame: pd.DataFrame, data: ColumnData) -> list[Finding]:
        expected = f"a mean {bounds_text(self.min, self.max)}"
        if data.kind is not ColumnKind.NUMERIC:
            return self.skipped(data.family, expected)
        values = data.numbers[~np.isnan(data.numbers)]
        if len(values) == 0:
            return [
                Finding(self.column, self.rule, expected, "skipped: no values to average", "info")
            ]
        mean = float(values.mean())
        low_ok = self.min is None or mean >= self.min
        if low_ok and (self.max is None or mean <= self.max):
            return []
        return [self.finding(expected, f"mean {fmt_number(mean)} over {len(values)} values")]
