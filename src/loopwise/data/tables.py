"""Tabular inputs read whole as one Arrow table: DataFrames, Arrow tables, Parquet/CSV/Feather.

Datasets, validation and drift all read their ``data`` argument through here; it sits below
them and imports nothing from the store, so each of them can import it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

from loopwise.data.chunks import check_column_names
from loopwise.errors import InvalidArgumentError

__all__ = ["READERS", "read_table", "unreadable_file"]

READERS = {
    ".parquet": "Parquet",
    ".pq": "Parquet",
    ".csv": "CSV",
    ".feather": "Arrow",
    ".arrow": "Arrow",
}
"""File suffixes read as data, and the format each names."""


# What pandas and pyarrow raise on a file that is not what its suffix says (empty, ragged,
# garbage, another encoding); pa.ArrowException covers ArrowInvalid and its kin.
_READ_ERRORS = (
    pa.ArrowException,
    pd.errors.EmptyDataError,
    pd.errors.ParserError,
    UnicodeDecodeError,
    OSError,
)

_FIXES = {
    "CSV": "Expected a CSV file with a header row and the same number of fields on every line: "
    "fix or re-export the file (quote fields that hold commas), or load it yourself and pass "
    "a DataFrame.",
    "Parquet": "Expected a Parquet file: re-write it (e.g. frame.to_parquet(path)), or rename it "
    "if it holds another format.",
    "Arrow": "Expected an Arrow IPC (Feather) file: re-write it (e.g. frame.to_feather(path)), or "
    "rename it if it holds another format.",
}


def unreadable_file(path: Path, kind: str, exc: BaseException) -> InvalidArgumentError:
    """The error for a data file that cannot be read as the format its suffix names: which file,
    what went wrong, what was expected and how to fix it."""
    size = path.stat().st_size if path.is_file() else None
    problem = "it is empty (0 bytes)" if size == 0 else f"{type(exc).__name__}: {exc}"
    return InvalidArgumentError(
        f"Could not read {str(path)!r} as {kind}: {problem}. {_FIXES[kind]}", parameter="data"
    )


def _read_file(path: Path, kind: str) -> pa.Table:
    if kind == "Parquet":
        return pq.read_table(path)
    if kind == "Arrow":
        return feather.read_table(path)
    return pa.Table.from_pandas(pd.read_csv(path))


def read_table(data: Any) -> pa.Table:
    """``data`` (a DataFrame, an Arrow table, or a path with a suffix in ``READERS``) as a table."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pd.DataFrame):
        check_column_names(data)
        return pa.Table.from_pandas(data)
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        kind = READERS.get(path.suffix.lower())
        if not path.is_file() or kind is None:
            problem = "does not exist" if not path.exists() else f"has suffix {path.suffix!r}"
            raise InvalidArgumentError(
                f"Expected a DataFrame, an Arrow table, or a path to a {', '.join(sorted(READERS))} "
                f"file; got {str(path)!r}, which {problem}.",
                parameter="data",
            )
        try:
            return _read_file(path, kind)
        except _READ_ERRORS as exc:
            raise unreadable_file(path, kind, exc) from exc
    raise InvalidArgumentError(
        f"Expected a pandas DataFrame, a pyarrow Table or a file path, got {type(data).__name__}.",
        parameter="data",
    )
