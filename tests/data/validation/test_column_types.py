"""Type families: what each pandas dtype (and each kind of object column) counts as."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopwise.data.validation.column_types import ColumnData, type_family


@pytest.mark.parametrize(
    ("values", "family"),
    [
        (pd.Series([1, 2], dtype="int32"), "integer"),
        (pd.Series([1, None], dtype="Int64"), "integer"),
        (pd.Series([1.5, np.nan]), "float"),
        (pd.Series(["a", None]), "string"),
        (pd.Series(["a", None], dtype=object), "string"),
        (pd.Series(pd.Categorical(["a", "b"])), "category"),
        (pd.Series([True, False]), "bool"),
        (pd.Series([True, None], dtype="boolean"), "bool"),
        (pd.Series(pd.date_range("2024-01-01", periods=2, tz="UTC")), "datetime"),
        (pd.Series([None, None], dtype=object), "null"),
        (pd.Series([1, "a"], dtype=object), "mixed"),
        (pd.Series([1, 2], dtype=object), "integer"),
    ],
)
def test_type_family(values: pd.Series, family: str) -> None:
    assert type_family(values) == family


def test_column_data_nulls_numbers_and_uniques() -> None:
    data = ColumnData(pd.Series([3, None, 3, 5], dtype="Int64"))
    assert data.nulls.tolist() == [False, True, False, False]
    assert np.isnan(data.numbers[1]) and data.numbers[3] == 5.0
    assert sorted(data.uniques) == [3, 5]
    categories = ColumnData(pd.Series(pd.Categorical(["b", None, "b"], categories=["a", "b"])))
    assert categories.uniques == ["b"] and categories.nulls.tolist() == [False, True, False]
