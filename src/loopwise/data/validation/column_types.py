"""What a column holds: its type family (integer, float, string, …) and its arrays, computed once
per validation and shared by every rule on the column.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd

from loopwise.data.kinds import ColumnKind, type_family_kind

__all__ = ["ACCEPTS", "ColumnData", "TypeName", "category_key", "plain_value", "type_family"]

TypeName = Literal["integer", "float", "string", "category", "bool", "datetime"]

# Which observed families satisfy an expected type. Strings and categoricals stand in for each
# other (a categorical column arrives as strings in a JSON request); an integer column may
# arrive as floats when every value is a whole number (pandas turns integers with missing values
# into floats, and so do CSV and JSON readers); an all-null column ("null") says nothing.
ACCEPTS: dict[str, frozenset[str]] = {
    "integer": frozenset({"integer", "null"}),
    "float": frozenset({"float", "integer", "null"}),
    "string": frozenset({"string", "category", "null"}),
    "category": frozenset({"category", "string", "null"}),
    "bool": frozenset({"bool", "null"}),
    "datetime": frozenset({"datetime", "null"}),
}
_OBJECT_FAMILIES = {
    "string": "string",
    "integer": "integer",
    "floating": "float",
    "mixed-integer-float": "float",
    "decimal": "float",
    "boolean": "bool",
    "datetime": "datetime",
    "datetime64": "datetime",
    "date": "datetime",
    "empty": "null",
}


def type_family(series: pd.Series) -> str:
    """The type family of a column: one of :data:`TypeName`, ``"null"`` (no values) or
    ``"mixed"`` (an object column holding several kinds of value)."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if isinstance(dtype, np.dtype) and dtype.kind == "O":
        return _OBJECT_FAMILIES.get(pd.api.types.infer_dtype(series, skipna=True), "mixed")
    if pd.api.types.is_string_dtype(dtype):
        return "string" if series.notna().any() or len(series) == 0 else "null"
    return "mixed"


def plain_value(value: Any) -> Any:
    """A value as JSON and YAML can carry it (NaN and infinity as text, times as ISO 8601)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if value is pd.NaT or value is pd.NA:
        return None
    return str(value)


def category_key(value: Any) -> str:
    """How category values compare: as text, so that 16, 16.0 and "16" are the same category."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class ColumnData:
    """One column's arrays, computed once per validation and shared by the column's rules
    (pandas calls cost microseconds each; a one-row serving batch must stay fast)."""

    def __init__(self, series: pd.Series) -> None:
        self.series = series

    @cached_property
    def family(self) -> str:
        return type_family(self.series)

    @cached_property
    def kind(self) -> ColumnKind | None:
        """The family's kind (numbers or categories); None for times, nulls and mixed values."""
        return type_family_kind(self.family)

    @cached_property
    def nulls(self) -> np.ndarray[Any, np.dtype[np.bool_]]:
        array, dtype = self.series.array, self.series.dtype
        if isinstance(array, pd.Categorical):
            return np.asarray(array.codes < 0, dtype=bool)
        if isinstance(dtype, np.dtype) and dtype.kind in "iub":
            return np.zeros(len(array), dtype=bool)
        if isinstance(dtype, np.dtype) and dtype.kind == "f":
            return np.asarray(
                np.isnan(self.series.to_numpy().astype("float64", copy=False)), dtype=bool
            )
        return np.asarray(array.isna(), dtype=bool)

    @cached_property
    def numbers(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """A numeric column as float64, nulls as NaN (nullable integer dtypes included)."""
        dtype = self.series.dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "iuf":
            return self.series.to_numpy().astype("float64", copy=False)
        return self.series.to_numpy(dtype="float64", na_value=np.nan)

    @cached_property
    def uniques(self) -> list[Any]:
        """The distinct non-null values."""
        array = self.series.array
        if isinstance(array, pd.Categorical):
            codes, categories = array.codes, array.categories
            return [categories[int(code)] for code in np.unique(codes[codes >= 0])]
        uniques = array.unique()
        return list(uniques[~np.asarray(pd.isna(uniques), dtype=bool)])
