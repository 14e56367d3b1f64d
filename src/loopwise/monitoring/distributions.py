"""Each feature's distribution in the reference and in the served inputs, on shared bins.

Numeric features are cut at the reference's deciles (so each bin holds about a tenth of the
reference, and a shift shows as bars that leave 10%); served values below or above every
reference value get bins of their own, ``"< low"`` and ``"> high"`` (never folded into the end
bins: a unit bug would hide there); categorical ones show the reference's most frequent
categories and the rest as ``other``. Only what the report draws is kept.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd

from loopwise.monitoring.results import ColumnDistribution

__all__ = ["distributions"]

BINS = 10
TOP = 10
OTHER = "other"


def _label(value: float) -> str:
    return f"{value:.4g}"


def _numeric(column: str, reference: pd.Series, current: pd.Series) -> ColumnDistribution:
    ref = reference.to_numpy(dtype=np.float64, na_value=np.nan)
    cur = current.to_numpy(dtype=np.float64, na_value=np.nan)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, BINS + 1))) if len(ref) else np.array([])
    if len(edges) < 2:
        edges = np.array([edges[0], edges[0] + 1.0]) if len(edges) else np.array([0.0, 1.0])
    labels = [
        f"[{_label(low)}, {_label(high)}{']' if i == len(edges) - 2 else ')'}"
        for i, (low, high) in enumerate(itertools.pairwise(edges))
    ]
    below, above = bool((cur < edges[0]).any()), bool((cur > edges[-1]).any())
    labels = [f"< {_label(edges[0])}"] * below + labels + [f"> {_label(edges[-1])}"] * above
    return ColumnDistribution(
        column,
        "numeric",
        labels,
        _shares(ref, edges, below, above),
        _shares(cur, edges, below, above),
    )


def _shares(
    values: np.ndarray[Any, Any], edges: np.ndarray[Any, Any], below: bool, above: bool
) -> list[float]:
    """Shares per bin: [edges[0], edges[-1]] cut at the inner edges (the last bin closed),
    with a bin before it for values below edges[0] and one after for values above edges[-1]
    when ``below``/``above`` (else there are none)."""
    bins = len(edges) - 1 + below + above
    if not len(values):
        return [float("nan")] * bins
    index = np.searchsorted(edges[1:-1], values, side="right") + below
    index[values < edges[0]] = 0
    index[values > edges[-1]] = bins - 1
    counts = np.bincount(index, minlength=bins)
    return [float(c) / len(values) for c in counts]


def _categorical(column: str, reference: pd.Series, current: pd.Series) -> ColumnDistribution:
    ref = reference.dropna().astype(str)
    cur = current.dropna().astype(str)
    top = ref.value_counts().index[:TOP].tolist()
    labels = [*top, OTHER] if ref.nunique() > TOP or not cur.isin(top).all() else top

    def shares(values: pd.Series) -> list[float]:
        if values.empty:
            return [float("nan")] * len(labels)
        counts = values.where(values.isin(top), OTHER).value_counts()
        return [float(counts.get(label, 0)) / len(values) for label in labels]

    return ColumnDistribution(column, "categorical", labels, shares(ref), shares(cur))


def distributions(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, ColumnDistribution]:
    """Reference against current for every column they share, in the reference's order."""
    result = {}
    for column in reference.columns:
        if column not in current.columns:
            continue
        ref, cur = reference[column], current[column]
        numeric = pd.api.types.is_numeric_dtype(ref) and not pd.api.types.is_bool_dtype(ref)
        if numeric and pd.api.types.is_numeric_dtype(cur):
            result[column] = _numeric(column, ref, cur)
        else:
            result[column] = _categorical(column, ref, cur)
    return result
