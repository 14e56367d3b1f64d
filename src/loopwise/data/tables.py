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

__all__ = ["READERS", "read_table"]

READERS = {
    ".parquet": "Parquet",
    ".pq": "Parquet",
    ".csv": "CSV",
    ".feather": "Arrow",
    ".arrow": "Arrow",
}
"""File suffixes read as data, and the format each names."""


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
        if kind == "Parquet":
            return pq.read_table(path)
        if kind == "Arrow":
            return feather.read_table(path)
        return pa.Table.from_pandas(pd.read_csv(path))
    raise InvalidArgumentError(
        f"Expected a pandas DataFrame, a pyarrow Table or a file path, got {type(data).__name__}.",
        parameter="data",
    )
