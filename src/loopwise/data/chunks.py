"""Any tabular input as a stream of Arrow record batches of bounded size.

Profiles (and anything else that summarises data in one pass) read through here, so that a
Parquet file far larger than memory is read one batch at a time and never loaded whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopwise.errors import InvalidArgumentError

__all__ = ["check_column_names", "iter_batches"]


def _check_chunk_rows(chunk_rows: object) -> int:
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise InvalidArgumentError(
            f"Expected chunk_rows to be a positive integer, got {chunk_rows!r}. "
            "Use e.g. chunk_rows=100_000.",
            parameter="chunk_rows",
        )
    return chunk_rows


def _check_columns(columns: object) -> list[str] | None:
    if columns is None:
        return None
    if isinstance(columns, str) or not isinstance(columns, Sequence):
        raise InvalidArgumentError(
            f"Expected columns to be a list of column names, got {columns!r}. "
            "Pass e.g. columns=['AGEP', 'SCHL'].",
            parameter="columns",
        )
    names = list(columns)
    bad = [c for c in names if not isinstance(c, str)]
    if bad or not names or len(set(names)) != len(names):
        problem = "non-string names" if bad else "no names" if not names else "repeated names"
        raise InvalidArgumentError(
            f"Expected columns to be distinct column names, got {names[:10]!r} ({problem}).",
            parameter="columns",
        )
    return names


def _select(batch: pa.RecordBatch, columns: list[str] | None) -> pa.RecordBatch:
    if columns is None:
        return batch
    missing = [c for c in columns if c not in batch.schema.names]
    if missing:
        raise InvalidArgumentError(
            f"Expected columns {missing!r} in the data, which has columns "
            f"{batch.schema.names[:30]!r}. Check the names in columns=.",
            parameter="columns",
        )
    return batch.select(columns)


def _mixed_column_error(frame: pd.DataFrame, exc: Exception) -> InvalidArgumentError:
    """Name the column Arrow refused, and what it holds, instead of Arrow's bare message."""
    for name in frame.columns:
        try:
            pa.array(frame[name], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            kinds = sorted({type(v).__name__ for v in frame[name].dropna().head(1000)})
            return InvalidArgumentError(
                f"Expected each column to hold one type, but column {name!r} mixes "
                f"{', '.join(kinds) or 'values Arrow cannot convert'}. Convert it first, e.g. "
                f"df[{name!r}] = df[{name!r}].astype(str), or pd.to_numeric(..., errors='coerce').",
                parameter="data",
                column=str(name),
            )
    return InvalidArgumentError(
        f"Expected a DataFrame Arrow can convert, but conversion failed: {exc}", parameter="data"
    )


def check_column_names(frame: pd.DataFrame) -> None:
    """Column names must be text: Arrow, Parquet and every report key columns by name."""
    bad = [c for c in frame.columns if not isinstance(c, str)]
    if bad:
        raise InvalidArgumentError(
            f"Expected string column names, got {bad[:5]!r}. Rename them, e.g. "
            "df.columns = df.columns.astype(str).",
            parameter="data",
        )


def _frame_batches(frame: pd.DataFrame, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    check_column_names(frame)
    # Slices convert one at a time, so that a large frame is never in memory twice. A slice
    # whose column holds only missing values comes out as Arrow's null type; profiles accept
    # that beside the column's real type.
    for start in range(0, max(len(frame), 1), chunk_rows):
        part = frame.iloc[start : start + chunk_rows]
        try:
            table = pa.Table.from_pandas(part, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise _mixed_column_error(part, exc) from exc
        yield from table.to_batches(max_chunksize=chunk_rows) or [
            pa.RecordBatch.from_pylist([], schema=table.schema)
        ]


def _table_batches(table: pa.Table, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    batches = table.to_batches(max_chunksize=chunk_rows)
    yield from batches or [pa.RecordBatch.from_pylist([], schema=table.schema)]


def _parquet_batches(
    path: Path, columns: list[str] | None, chunk_rows: int
) -> Iterator[pa.RecordBatch]:
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidArgumentError(
            f"Expected a readable Parquet file, got {str(path)!r}: {exc}", parameter="data"
        ) from exc
    with file:
        names = file.schema_arrow.names
        missing = [c for c in columns or [] if c not in names]
        if missing:
            raise InvalidArgumentError(
                f"Expected columns {missing!r} in {str(path)!r}, which has columns "
                f"{names[:30]!r}. Check the names in columns=.",
                parameter="columns",
            )
        empty = True
        for batch in file.iter_batches(batch_size=chunk_rows, columns=columns):
            empty = False
            yield batch
        if empty:
            schema = file.schema_arrow
            yield pa.RecordBatch.from_pylist([], schema=schema).select(columns or names)


def iter_batches(
    data: Any, *, columns: Sequence[str] | None = None, chunk_rows: int = 100_000
) -> Iterator[pa.RecordBatch]:
    """``data`` as record batches of at most ``chunk_rows`` rows, restricted to ``columns``.

    ``data`` may be a pandas DataFrame, a pyarrow Table or RecordBatch, a path to a Parquet
    file (read batch by batch), or an iterable of any of those (e.g. a generator of chunks).
    Zero rows give one empty batch, so that the columns and their types are still known.
    """
    rows = _check_chunk_rows(chunk_rows)
    wanted = _check_columns(columns)
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.is_file() or path.suffix.lower() not in (".parquet", ".pq"):
            problem = "does not exist" if not path.exists() else "is not a .parquet file"
            raise InvalidArgumentError(
                f"Expected a path to a Parquet file, got {str(path)!r}, which {problem}. "
                "Read other formats with pandas and pass the DataFrame.",
                parameter="data",
            )
        yield from _parquet_batches(path, wanted, rows)
        return
    if isinstance(data, (pd.DataFrame, pa.Table, pa.RecordBatch)):
        parts: Iterable[Any] = [data]
    elif isinstance(data, Iterable) and not isinstance(data, (bytes, dict, pd.Series)):
        parts = data
    else:
        raise InvalidArgumentError(
            f"Expected a pandas DataFrame, a pyarrow Table, a Parquet file path or an iterable "
            f"of DataFrames / RecordBatches, got {type(data).__name__}.",
            parameter="data",
        )
    seen = False
    for part in parts:
        if isinstance(part, pd.DataFrame):
            batches: Iterable[pa.RecordBatch] = _frame_batches(part, rows)
        elif isinstance(part, pa.Table):
            batches = _table_batches(part, rows)
        elif isinstance(part, pa.RecordBatch):
            batches = _table_batches(pa.Table.from_batches([part]), rows)
        else:
            raise InvalidArgumentError(
                f"Expected each chunk to be a pandas DataFrame, a pyarrow Table or a "
                f"RecordBatch, got {type(part).__name__}.",
                parameter="data",
            )
        for batch in batches:
            seen = True
            yield _select(batch, wanted)
    if not seen:
        raise InvalidArgumentError(
            "Expected at least one chunk of data, got an empty iterable. Pass a DataFrame "
            "(it may have zero rows) so that the columns are known.",
            parameter="data",
        )
