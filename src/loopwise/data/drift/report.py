"""Data drift: has each column's distribution moved between a reference and a current sample?

Defaults follow Evidently 0.7's ``DataDriftPreset`` (test by column kind and reference size,
thresholds, the dataset-level share), so that verdicts agree; the work runs on NumPy arrays,
sorting and counting each column once, one thread per column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopwise.data.drift.columns import (
    column_kind,
    column_sample,
    is_text_type,
    to_table,
    workers,
)
from loopwise.data.drift.domain_drift import DomainClassifierDrift, domain_classifier_drift
from loopwise.data.drift.stattests import Sample, StatTest, default_test, get_stat_test
from loopwise.data.drift.stattests import unique_count as _unique_count
from loopwise.data.kinds import ColumnKind, arrow_kind
from loopwise.errors import InvalidArgumentError

__all__ = [
    "DEFAULT_DRIFT_SHARE",
    "ColumnDrift",
    "DomainClassifierDrift",
    "DriftReport",
    "domain_classifier_drift",
    "drift",
    "prediction_drift",
]

DEFAULT_DRIFT_SHARE = 0.5  # the dataset drifts when at least this share of its columns do


@dataclass(frozen=True)
class ColumnDrift:
    """One column's verdict. ``score`` is what meets the threshold: the p-value for p-value
    tests, the statistic for distances. ``note`` explains verdicts reached without a test."""

    column: str
    kind: str
    test: str
    statistic: float
    threshold: float
    drifted: bool
    p_value: float | None = None
    reference_rows: int = 0  # values that took part (nulls, NaN and inf are dropped)
    current_rows: int = 0
    reference_dropped: int = 0
    current_dropped: int = 0
    note: str | None = None

    @property
    def score(self) -> float:
        return self.p_value if self.p_value is not None else self.statistic

    def to_dict(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in asdict(self).items()} | {"score": _plain(self.score)}


@dataclass(frozen=True)
class DriftReport:
    """Per-column verdicts and the dataset's: drifted when ``share_drifted >= drift_share``."""

    columns: dict[str, ColumnDrift]
    drift_share: float = DEFAULT_DRIFT_SHARE
    skipped: dict[str, str] = field(default_factory=dict)  # column -> why it was not compared

    @property
    def drifted_columns(self) -> list[str]:
        return [name for name, result in self.columns.items() if result.drifted]

    @property
    def share_drifted(self) -> float:
        return len(self.drifted_columns) / len(self.columns) if self.columns else 0.0

    @property
    def drifted(self) -> bool:
        return bool(self.columns) and self.share_drifted >= self.drift_share

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(c) for c in self.columns.values()])

    def to_dict(self) -> dict[str, Any]:
        return {
            "drifted": self.drifted,
            "share_drifted": self.share_drifted,
            "drift_share": self.drift_share,
            "columns": [c.to_dict() for c in self.columns.values()],
            "skipped": dict(self.skipped),
        }


def _plain(value: Any) -> Any:
    """JSON has no NaN or infinity: they become None (the note says why)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _without_test(
    name: str, kind: ColumnKind, ref: Sample, cur: Sample, *, drifted: bool, note: str
) -> ColumnDrift:
    return ColumnDrift(
        column=name,
        kind=kind,
        test="none",
        statistic=math.nan,
        threshold=math.nan,
        drifted=drifted,
        reference_rows=ref.size,
        current_rows=cur.size,
        reference_dropped=ref.dropped,
        current_dropped=cur.dropped,
        note=note,
    )


def _all_null(name: str, reference: pa.ChunkedArray, current: pa.ChunkedArray) -> ColumnDrift:
    """A side with no values at all (Arrow type null, e.g. a column of None) has no valid
    values: it is not a type change. The kind is the other side's."""
    other = reference if pa.types.is_null(current.type) else current
    kind = ColumnKind.CATEGORICAL if pa.types.is_null(other.type) else column_kind(other)
    ref, cur = (column_sample(side, kind) for side in (reference, current))
    if ref.size == cur.size == 0:
        return _without_test(
            name, kind, ref, cur, drifted=False, note="no valid values on either side"
        )
    side = "current" if cur.size == 0 else "reference"
    return _without_test(
        name, kind, ref, cur, drifted=True, note=f"no valid values in {side} (all null)"
    )


def _column_drift(
    name: str,
    reference: pa.ChunkedArray,
    current: pa.ChunkedArray,
    test_name: str | None,
    threshold: float | None,
) -> ColumnDrift:
    if pa.types.is_null(reference.type) or pa.types.is_null(current.type):
        return _all_null(name, reference, current)
    ref_kind, cur_kind = arrow_kind(reference.type), arrow_kind(current.type)
    kind = column_kind(current)
    if ref_kind != cur_kind:
        empty = Sample(kind, values=np.zeros(0))
        return _without_test(
            name, kind, empty, empty, drifted=True,
            note=f"type changed from {reference.type} to {current.type}",
        )  # fmt: skip
    ref, cur = column_sample(reference, kind), column_sample(current, kind)
    del reference, current  # the samples hold what the test needs; free the Arrow buffers
    # Arrow's allocator (mimalloc) keeps freed pages per thread; hand them back, or a report
    # on 1M-row Parquet files holds ~70 MB more than its columns need.
    pa.default_memory_pool().release_unused()
    if ref.size == 0 or cur.size == 0:
        if ref.size == cur.size:
            return _without_test(
                name, kind, ref, cur, drifted=False, note="no valid values on either side"
            )
        side = "current" if cur.size == 0 else "reference"
        return _without_test(
            name, kind, ref, cur, drifted=True, note=f"no valid values in {side} (all null)"
        )
    test: StatTest = (
        get_stat_test(test_name, kind)
        if test_name is not None
        else default_test(kind, ref.size, _unique_count(ref, cur))
    )
    limit = test.default_threshold if threshold is None else threshold
    statistic, p_value = test.compute(ref, cur)
    note = None
    if math.isinf(statistic):
        note = "current has values the reference never had"
    return ColumnDrift(
        column=name,
        kind=kind,
        test=test.name,
        statistic=statistic,
        threshold=limit,
        drifted=test.is_drift(statistic, p_value, limit),
        p_value=p_value,
        reference_rows=ref.size,
        current_rows=cur.size,
        reference_dropped=ref.dropped,
        current_dropped=cur.dropped,
        note=note,
    )


def _comparable(dtype: pa.DataType) -> bool:
    """Whether a column of this type holds values drift can compare (numbers or categories)."""
    return arrow_kind(dtype) is not None


def _check_names(
    mapping: Mapping[str, Any] | None, columns: Sequence[str], parameter: str
) -> dict[str, Any]:
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping):
        raise InvalidArgumentError(
            f"Expected a mapping of column name to value for {parameter}, got "
            f"{type(mapping).__name__}.",
            parameter=parameter,
        )
    unknown = [k for k in mapping if k not in columns]
    if unknown:
        raise InvalidArgumentError(
            f"{parameter} names columns that are not compared: {unknown!r}. Compared columns: "
            f"{list(columns)!r}.",
            parameter=parameter,
        )
    return dict(mapping)


def _check_threshold(column: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidArgumentError(
            f"Expected a finite number as the threshold for {column!r}, got {value!r}.",
            parameter="thresholds",
        )
    if value <= 0:
        raise InvalidArgumentError(
            f"Expected a positive threshold for {column!r}, got {value!r}: p-value tests take "
            "a level such as 0.05, distances a value such as 0.1.",
            parameter="thresholds",
        )
    return float(value)


def drift(
    reference: Any,
    current: Any,
    *,
    columns: Sequence[str] | None = None,
    tests: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    drift_share: float = DEFAULT_DRIFT_SHARE,
) -> DriftReport:
    """Compare each column of ``current`` with ``reference`` (DataFrames, Arrow tables or paths).

    ``tests`` and ``thresholds`` override the defaults per column (``{"AGEP": "psi"}``); the
    dataset drifts when at least ``drift_share`` of the compared columns do.
    """
    ref_table = to_table(reference, "reference", lazy=True)
    cur_table = to_table(current, "current", lazy=True)
    if isinstance(drift_share, bool) or not isinstance(drift_share, (int, float)):
        raise InvalidArgumentError(
            f"Expected drift_share as a number in (0, 1], got {drift_share!r}.",
            parameter="drift_share",
        )
    if not 0 < drift_share <= 1:
        raise InvalidArgumentError(
            f"Expected drift_share in (0, 1], got {drift_share}. 0.5 means: the dataset "
            "drifts when half of its columns do.",
            parameter="drift_share",
        )
    skipped: dict[str, str] = {}
    if columns is None:
        names = [c for c in cur_table.column_names if c in ref_table.column_names]
        skipped |= {c: "missing from reference" for c in cur_table.column_names if c not in names}
        skipped |= {c: "missing from current" for c in ref_table.column_names if c not in names}
        for name in list(names):
            ref_type, cur_type = (
                ref_table.schema.field(name).type,
                cur_table.schema.field(name).type,
            )
            if not _comparable(ref_type) and not _comparable(cur_type):
                skipped[name] = f"type {cur_type} is not compared"
                names.remove(name)
    else:
        if isinstance(columns, str) or not columns:
            raise InvalidArgumentError(
                f"Expected a non-empty list of column names, got {columns!r}.",
                parameter="columns",
            )
        names = list(columns)
        for side, table in (("reference", ref_table), ("current", cur_table)):
            missing = [c for c in names if c not in table.column_names]
            if missing:
                raise InvalidArgumentError(
                    f"Columns {missing!r} are not in {side}; it has {table.column_names!r}.",
                    parameter="columns",
                )
        unusable = [
            c
            for c in names
            if not _comparable(cur_table.schema.field(c).type)
            and not pa.types.is_null(cur_table.schema.field(c).type)
        ]
        if unusable:
            raise InvalidArgumentError(
                f"Columns {unusable!r} hold neither numbers nor categories (types "
                f"{[str(cur_table.schema.field(c).type) for c in unusable]}); drop them or convert "
                "them, e.g. timestamps to seconds.",
                parameter="columns",
            )
    if not names:
        raise InvalidArgumentError(
            "reference and current have no comparable column in common "
            f"(reference: {ref_table.column_names!r}, current: {cur_table.column_names!r}).",
            parameter="current",
        )
    chosen = _check_names(tests, names, "tests")
    limits = {
        k: _check_threshold(k, v) for k, v in _check_names(thresholds, names, "thresholds").items()
    }
    for test_name in chosen.values():
        get_stat_test(test_name, None)  # fail on an unknown name before any work starts

    def one(name: str) -> ColumnDrift:
        return _column_drift(
            name,
            ref_table.column(name),
            cur_table.column(name),
            chosen.get(name),
            limits.get(name),
        )

    threads = workers(len(names))
    if threads == 1:
        results = [one(n) for n in names]
    else:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="drift") as pool:
            results = list(pool.map(one, names))
    return DriftReport({r.column: r for r in results}, float(drift_share), skipped)


def prediction_drift(
    reference_predictions: Any,
    current_predictions: Any,
    *,
    test: str | None = None,
    threshold: float | None = None,
) -> ColumnDrift:
    """Drift of a model's outputs (labels or scores), which needs no ground truth.

    Scores (floats) are compared as numbers, labels (strings, booleans, few integers) as
    categories, with the same defaults as :func:`drift`; string labels are categories even
    where most of them differ (never text).
    """
    tables = []
    for parameter, values in (
        ("reference_predictions", reference_predictions),
        ("current_predictions", current_predictions),
    ):
        if isinstance(values, pd.DataFrame):
            raise InvalidArgumentError(
                f"Expected one prediction per row (a Series or 1-D array), got a DataFrame "
                f"with columns {list(values.columns)!r}. Pass one column, e.g. frame['score'].",
                parameter=parameter,
            )
        if not isinstance(values, (pd.Series, pa.Array, pa.ChunkedArray)):
            values = np.asarray(values)
            if values.ndim != 1:
                raise InvalidArgumentError(
                    f"Expected one prediction per row (1-D), got shape {values.shape}. For class "
                    "probabilities pass one column, e.g. proba[:, 1].",
                    parameter=parameter,
                )
        try:
            column = (
                values
                if isinstance(values, (pa.Array, pa.ChunkedArray))
                else pa.array(values, from_pandas=True)
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidArgumentError(
                f"Expected predictions of one type, got {exc}.", parameter=parameter
            ) from exc
        if len(column) == 0:
            raise InvalidArgumentError(
                f"Expected at least one prediction in {parameter}, got none.", parameter=parameter
            )
        if is_text_type(column.type):
            # Labels are categories however many differ (a small window may see each once):
            # dictionary-encoded strings are never text.
            column = pc.dictionary_encode(column)
        tables.append(pa.table({"prediction": column}))
    report = drift(
        tables[0],
        tables[1],
        tests=None if test is None else {"prediction": test},
        thresholds=None if threshold is None else {"prediction": threshold},
    )
    return report.columns["prediction"]
