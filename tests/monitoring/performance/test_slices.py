"""Slices: category values in order, nulls as their own value, readable quantile bins, segments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopwise.errors import InvalidArgumentError
from loopwise.monitoring.performance.slices import ALL, MISSING, build_slices


def test_the_whole_frame_comes_first() -> None:
    [whole] = build_slices(pd.DataFrame({"a": [1, 2]}), None, bins=5)
    assert (whole.name, whole.values, whole.code.tolist()) == (ALL, [ALL], [0, 0])


def test_categories_are_sorted_and_nulls_are_a_value() -> None:
    frame = pd.DataFrame({"c": ["b", None, "a", "b"], "n": [2.0, 1.0, np.nan, 2.0]})
    _, c, n = build_slices(frame, ["c", "n"], bins=5)
    assert c.values == ["a", "b", MISSING] and c.code.tolist() == [1, 2, 0, 1]
    assert n.values == ["1", "2", MISSING] and n.code.tolist() == [1, 0, 2, 1]


def test_mixed_types_get_one_order_numbers_first() -> None:
    _, mixed = build_slices(pd.DataFrame({"m": [10, "b", 2, "b"]}), ["m"], bins=5)
    assert mixed.values == ["2", "10", "b"] and mixed.code.tolist() == [1, 2, 0, 2]


def test_numeric_columns_with_many_values_get_quantile_bins() -> None:
    x = np.random.default_rng(0).uniform(0, 1000, 10_000)
    x[:3] = [np.nan, np.inf, -np.inf]
    _, binned = build_slices(pd.DataFrame({"x": x}), ["x"], bins=4)
    assert len(binned.values) == 5 and binned.values[-1] == MISSING
    assert binned.values[:4] == ["[0.108, 250)", "[250, 500)", "[500, 750)", "[750, 1000]"]
    counts = np.bincount(binned.code)
    assert counts[-1] == 1 and (np.abs(counts[:4] - 2500) < 50).all()
    assert binned.code[1] == 3 and binned.code[2] == 0  # infinities fall in the outer bins


def test_categorical_dtype_is_never_binned() -> None:
    frame = pd.DataFrame({"k": pd.Categorical(np.arange(100) % 50)})
    _, k = build_slices(frame, ["k"], bins=5)
    assert len(k.values) == 50


def test_bad_slice_specs_fail_clearly() -> None:
    frame = pd.DataFrame({"a": [1, 2, 3]})
    with pytest.raises(InvalidArgumentError, match=r"slices=\['a'\]"):
        build_slices(frame, "a", bins=5)
    with pytest.raises(InvalidArgumentError, match="boolean mask"):
        build_slices(frame, {"s": lambda f: f["a"]}, bins=5)
