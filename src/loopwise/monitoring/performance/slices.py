"""Slices of a monitoring frame: each value of a categorical column, quantile bins of a numeric
one (with readable edges), or a named custom segment given as a boolean mask or a function."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from loopwise.errors import InvalidArgumentError

__all__ = ["ALL", "CATEGORY_MAX_VALUES", "MISSING", "Slice", "SliceSpec", "build_slices"]

ALL = "all"  # the slice (and its value) that holds every row
MISSING = "(missing)"  # the value of rows whose slice column is null
CATEGORY_MAX_VALUES = 20  # numeric columns with more distinct values are cut into quantile bins

Segment: TypeAlias = "npt.ArrayLike | pd.Series | Callable[[pd.DataFrame], Any]"
SliceSpec: TypeAlias = "Sequence[str] | Mapping[str, Segment]"


@dataclass(frozen=True)
class Slice:
    """One way to cut the rows: ``code[i]`` indexes ``values`` (-1: row i is in no value)."""

    name: str
    values: list[str]
    code: npt.NDArray[np.int64]


def build_slices(frame: pd.DataFrame, slices: SliceSpec | None, bins: int) -> list[Slice]:
    """The whole frame first (slice ``"all"``), then each requested slice."""
    rows = len(frame)
    out = [Slice(ALL, [ALL], np.zeros(rows, dtype=np.int64))]
    if slices is None:
        return out
    if isinstance(slices, Mapping):
        for name, segment in slices.items():
            out.append(_segment(frame, str(name), segment))
        return out
    if isinstance(slices, str) or not isinstance(slices, Sequence):
        raise InvalidArgumentError(
            f"slices: expected a list of column names or a dict of name -> boolean mask or "
            f"function, got {slices!r}. Wrap a single column in a list: slices=[{slices!r}].",
            parameter="slices",
        )
    for column in slices:
        if not isinstance(column, str) or column not in frame.columns:
            raise InvalidArgumentError(
                f"slices: no column {column!r} in the frame; expected one of "
                f"{list(map(str, frame.columns))}.",
                parameter="slices",
            )
        out.append(_column_slice(frame[column], column, bins))
    return out


def _segment(frame: pd.DataFrame, name: str, segment: Segment) -> Slice:
    """A custom segment: its rows form one value, ``"True"`` (as a boolean column's would)."""
    mask = segment(frame) if callable(segment) else segment
    values = np.asarray(mask)
    if values.shape != (len(frame),):
        raise InvalidArgumentError(
            f"slices[{name!r}]: expected a boolean mask with one entry per row ({len(frame)}), "
            f"got shape {values.shape}. Build it from the same frame, e.g. frame['AGEP'] < 25.",
            parameter="slices",
        )
    if values.dtype != np.bool_:
        raise InvalidArgumentError(
            f"slices[{name!r}]: expected a boolean mask, got dtype {values.dtype}. "
            "Nulls have no place in a mask: fill them with False.",
            parameter="slices",
        )
    return Slice(name, ["True"], np.where(values, 0, -1).astype(np.int64))


def _column_slice(column: pd.Series, name: str, bins: int) -> Slice:
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    categorical = isinstance(column.dtype, pd.CategoricalDtype)
    if numeric and not categorical and column.nunique() > CATEGORY_MAX_VALUES:
        return _binned(column, name, bins)
    try:
        code, uniques = pd.factorize(column, sort=True)
    except TypeError:  # mixed types cannot be sorted: order by their text
        code, uniques = pd.factorize(column, sort=False)
        order = np.argsort([str(u) for u in uniques], kind="stable")
        code = np.where(code >= 0, np.argsort(order)[code], -1)
        uniques = uniques[order]
    labels = [_label(u) for u in uniques]
    code = np.asarray(code, dtype=np.int64)
    if (code < 0).any():
        code = np.where(code < 0, len(labels), code)
        labels.append(MISSING)
    return Slice(name, labels, code)


def _binned(column: pd.Series, name: str, bins: int) -> Slice:
    """Quantile bins over the whole frame, edges rounded to as few significant digits as keep
    them apart: ``[17, 29)``, ``[29, 43)``, …, ``[75, 95]``."""
    x = column.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = x[np.isfinite(x)]
    low, high = float(finite.min()), float(finite.max())
    inner = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])
    distinct = len(np.unique(inner))
    edges = inner
    for digits in range(2, 16):
        edges = np.unique([float(f"{e:.{digits}g}") for e in inner])
        if len(edges) == distinct:
            break
    edges = edges[(edges > low) & (edges < high)]
    bounds = [_outward(low, up=False), *edges.tolist(), _outward(high, up=True)]
    labels = [f"[{a:g}, {b:g})" for a, b in itertools.pairwise(bounds)]
    labels[-1] = labels[-1][:-1] + "]"
    code = np.searchsorted(edges, x, side="right").astype(np.int64)
    if np.isnan(x).any():
        code[np.isnan(x)] = len(labels)
        labels.append(MISSING)
    return Slice(name, labels, code)


def _outward(value: float, *, up: bool, digits: int = 4) -> float:
    """``value`` to ``digits`` significant digits, rounded away from the bins it bounds."""
    if value == 0 or not np.isfinite(value):
        return value
    scale = 10.0 ** (np.floor(np.log10(abs(value))) - digits + 1)
    rounded = (np.ceil if up else np.floor)(value / scale) * scale
    return float(f"{rounded:.{digits}g}")


def _label(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)
