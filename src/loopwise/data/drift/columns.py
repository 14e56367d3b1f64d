"""Frames to columns to Samples: the input side of drift reports.

DataFrames, Arrow tables and files become Arrow columns (converted one per thread), each column
gets a kind by Evidently's rules, and each side a ``Sample`` of its valid values, without pandas.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypeAlias, overload

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loopwise.data.chunks import check_column_names
from loopwise.data.drift.stattests import Sample
from loopwise.data.kinds import ColumnKind, arrow_kind
from loopwise.data.tables import READERS, read_table, unreadable_file
from loopwise.errors import InvalidArgumentError

__all__ = [
    "INTEGER_CATEGORY_MAX_UNIQUE",
    "TEXT_MIN_DISTINCT_SHARE",
    "Columns",
    "ParquetColumns",
    "column_kind",
    "column_sample",
    "is_text_type",
    "to_table",
    "workers",
]

INTEGER_CATEGORY_MAX_UNIQUE = 10  # integer columns with at most this many values are categories
TEXT_MIN_DISTINCT_SHARE = 0.5  # string columns with more distinct values than this share are text


def _frame_to_table(frame: pd.DataFrame) -> pa.Table:
    """Column by column on a thread each: 3x faster than ``pa.Table.from_pandas`` on wide,
    long frames (its metadata pass is serial), and the index is left out."""
    check_column_names(frame)
    if frame.columns.has_duplicates:
        raise InvalidArgumentError(
            f"Expected unique column names, got duplicates "
            f"{sorted(set(frame.columns[frame.columns.duplicated()]))!r}.",
            parameter="data",
        )

    def convert(name: str) -> pa.Array:
        try:
            return pa.Array.from_pandas(frame[name])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidArgumentError(
                f"Column {name!r} mixes types ({exc}). Cast it first, e.g. "
                f"frame[{name!r}] = frame[{name!r}].astype(str).",
                parameter="data",
            ) from exc

    names = list(frame.columns)
    with ThreadPoolExecutor(max_workers=workers(len(names))) as pool:
        return pa.table(dict(zip(names, pool.map(convert, names), strict=True)))


def workers(tasks: int) -> int:
    return max(1, min(tasks, os.cpu_count() or 1))


class ParquetColumns:
    """A Parquet file read one column at a time (the part of ``pa.Table`` that reports use),
    so that a drift report holds one column per thread in memory, not two whole tables."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @cached_property
    def schema(self) -> pa.Schema:
        schema = pq.read_schema(self.path)
        # A pandas index stored as a column is the index, not data (pandas reads it back so).
        index = (schema.pandas_metadata or {}).get("index_columns", [])
        return pa.schema([f for f in schema if f.name not in index])

    @property
    def column_names(self) -> list[str]:
        return list(self.schema.names)

    @property
    def num_columns(self) -> int:
        return len(self.schema)

    @cached_property
    def num_rows(self) -> int:
        return int(pq.ParquetFile(self.path).metadata.num_rows)

    def column(self, name: str) -> pa.ChunkedArray:
        # No Arrow threads and no pre-buffering: columns already run one per thread, and on
        # 1M-row files this keeps ~50 MB less resident than ``pq.read_table(columns=[name])``.
        parquet = pq.ParquetFile(self.path, pre_buffer=False)
        return parquet.read(columns=[name], use_threads=False).column(0)


Columns: TypeAlias = "pa.Table | ParquetColumns"


def _open_parquet(path: Path) -> ParquetColumns:
    """A Parquet file left on disk, its footer read now: a file that is no Parquet fails here,
    with the file's name, not later in a thread."""
    columns = ParquetColumns(path)
    try:
        columns.schema  # noqa: B018 (read and cached: the check is that it reads)
        columns.num_rows  # noqa: B018
    except (pa.ArrowException, OSError) as exc:
        raise unreadable_file(path, READERS[path.suffix.lower()], exc) from exc
    return columns


@overload
def to_table(data: Any, parameter: str, *, lazy: Literal[False] = False) -> pa.Table: ...
@overload
def to_table(data: Any, parameter: str, *, lazy: bool) -> Columns: ...
def to_table(data: Any, parameter: str, *, lazy: bool = False) -> Columns:
    """A DataFrame, Arrow table, or Parquet/CSV/Feather path as non-empty columns; with
    ``lazy``, a Parquet file stays on disk and is read column by column."""
    if isinstance(data, pd.Series):
        data = data.to_frame()
    table: Columns
    try:
        if isinstance(data, pd.DataFrame):
            table = _frame_to_table(data)
        elif (
            lazy
            and isinstance(data, (str, os.PathLike))
            and Path(data).suffix.lower() in (".parquet", ".pq")
            and Path(data).is_file()
        ):
            table = _open_parquet(Path(data))
        else:
            table = read_table(data)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(exc.message, parameter=parameter) from exc
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InvalidArgumentError(
            f"Could not read {parameter} as columns of one type each: {exc}.",
            parameter=parameter,
        ) from exc
    if table.num_rows == 0 or table.num_columns == 0:
        raise InvalidArgumentError(
            f"Expected {parameter} with at least one row and one column, got "
            f"{table.num_rows} rows x {table.num_columns} columns.",
            parameter=parameter,
        )
    return table


def is_text_type(dtype: pa.DataType) -> bool:
    """Plain strings (not dictionaries: a pandas ``category`` is always categories)."""
    return bool(
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_string_view(dtype)
    )


def column_kind(column: pa.ChunkedArray) -> ColumnKind:
    """Evidently 0.7's inference (``infer_column_type``): floats are numeric; integers too unless
    they have at most 10 distinct values; strings are text when more than half of their valid
    values are distinct, else categories; booleans and categoricals are categories.

    Where Evidently leaves a column out (unsigned and nullable integers, booleans with nulls),
    the same rules still give it a kind: see docs/drift.md, "Where kinds differ from Evidently".
    """
    dtype = column.type
    if pa.types.is_integer(dtype):
        distinct = pc.count_distinct(column).as_py()
        return (
            ColumnKind.CATEGORICAL
            if distinct <= INTEGER_CATEGORY_MAX_UNIQUE
            else ColumnKind.NUMERIC
        )
    if is_text_type(dtype):
        distinct = pc.count_distinct(column).as_py()  # nulls are not counted (mode "only_valid")
        valid = len(column) - column.null_count
        return (
            ColumnKind.TEXT
            if distinct > valid * TEXT_MIN_DISTINCT_SHARE
            else ColumnKind.CATEGORICAL
        )
    return ColumnKind.NUMERIC if arrow_kind(dtype) is ColumnKind.NUMERIC else ColumnKind.CATEGORICAL


def column_sample(column: pa.ChunkedArray, kind: ColumnKind) -> Sample:
    """Valid values without pandas: floats for numbers, counts per value for categories."""
    dtype = column.type
    if arrow_kind(dtype) is ColumnKind.NUMERIC:
        values = np.asarray(column.to_numpy(), dtype=np.float64)
        mask = np.isfinite(values)
        finite = values[mask] if not mask.all() else np.array(values)  # a copy we may sort
        del mask, values
        finite.sort()  # in place: the sample keeps one array, not a copy and its sorted twin
        return Sample(kind, values=finite, dropped=len(column) - len(finite), presorted=True)
    counts: dict[Any, int] = {}
    if pa.types.is_dictionary(dtype):
        for chunk in column.chunks:
            indices = pc.drop_null(chunk.indices).to_numpy()
            per_entry = np.bincount(indices, minlength=len(chunk.dictionary))
            for key, count in zip(chunk.dictionary.to_pylist(), per_entry.tolist(), strict=True):
                if count and key is not None:
                    counts[key] = counts.get(key, 0) + count
    else:
        for entry in pc.value_counts(column).to_pylist():
            if entry["values"] is not None:
                counts[entry["values"]] = entry["counts"]
    valid = sum(counts.values())
    # Text is read value by value, in row order (Evidently's classifier splits the rows so).
    texts = None
    if kind is ColumnKind.TEXT:
        plain = column.cast(dtype.value_type) if pa.types.is_dictionary(dtype) else column
        texts = pc.drop_null(plain).to_numpy(zero_copy_only=False)
    return Sample(
        kind,
        keys=np.array(list(counts), dtype=object),
        counts=np.array(list(counts.values()), dtype=np.int64),
        texts=texts,
        dropped=len(column) - valid,
    )
