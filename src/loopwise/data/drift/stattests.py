"""The two-sample tests behind drift reports, one small object each, with Evidently 0.7's defaults.

A ``Sample`` is one side of a column with its nulls, NaN and infinities removed; it sorts and
counts its values once, on first use, so that picking a test and running it never repeat the work.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from loopwise.data.drift.text_drift import text_classifier_auc, text_classifier_p_value
from loopwise.data.kinds import ColumnKind
from loopwise.errors import InvalidArgumentError, require_extra

__all__ = [
    "DISTANCE_BINS_MIN_UNIQUE",
    "SMALL_SAMPLE_ROWS",
    "STAT_TESTS",
    "TEXT_TESTS",
    "Sample",
    "StatTest",
    "default_test",
    "get_stat_test",
]

FloatArray = npt.NDArray[np.float64]

SMALL_SAMPLE_ROWS = 1000  # reference rows up to which p-value tests are the default
FEW_VALUES = 5  # numeric columns with at most this many values are tested as categories
DISTANCE_BINS_MIN_UNIQUE = 20  # numeric references with more values get Sturges bins in JS/PSI
WASSERSTEIN_MIN_STD = 0.001  # the normaliser never goes below this (a constant reference)


class Sample:
    """The valid values of one side of a column: a numeric array, or category keys with counts
    (and, for text, the values themselves in row order, which a text classifier reads).

    ``kind`` says how the column is tested, not how it is stored: an integer column with a few
    values is ``categorical`` but keeps numeric keys. ``dropped`` counts nulls, NaN and
    infinities, which never take part in a test (Evidently's rule).
    """

    def __init__(
        self,
        kind: ColumnKind | str,
        *,
        values: FloatArray | None = None,
        keys: npt.NDArray[Any] | None = None,
        counts: npt.NDArray[np.int64] | None = None,
        texts: npt.NDArray[Any] | None = None,
        dropped: int = 0,
        presorted: bool = False,
    ) -> None:
        self.kind = ColumnKind(kind)
        self._values = values
        self._texts = texts
        self._presorted = presorted
        self._keys = keys
        self._counts = counts
        self.dropped = dropped

    @classmethod
    def of(
        cls, data: Any, kind: ColumnKind | str | None = None, *, parameter: str = "data"
    ) -> Sample:
        """A Sample from a 1-D array-like (or a Sample, returned as is); numbers are numeric."""
        if isinstance(data, Sample):
            return data
        array = np.asarray(data)
        if array.ndim != 1:
            raise InvalidArgumentError(
                f"Expected a 1-D array of values for {parameter!r}, got shape {array.shape}. "
                "Pass one column, e.g. frame['age'].",
                parameter=parameter,
            )
        if array.dtype.kind in "iuf":
            floats = array.astype(np.float64)
            finite = floats[np.isfinite(floats)]
            return cls(kind or ColumnKind.NUMERIC, values=finite, dropped=len(floats) - len(finite))
        import pandas as pd  # heavy (~1 s): only for non-numeric samples; numeric tests skip it

        series = pd.Series(array, dtype=object)
        valid = series[~series.isna()]
        valid = valid[~valid.map(lambda v: isinstance(v, float) and math.isinf(v))]
        counted = valid.value_counts(sort=False)
        return cls(
            kind or ColumnKind.CATEGORICAL,
            keys=np.asarray(counted.index, dtype=object),
            counts=np.asarray(counted.to_numpy(), dtype=np.int64),
            texts=valid.to_numpy(dtype=object),
            dropped=len(series) - len(valid),
        )

    @property
    def is_numeric_storage(self) -> bool:
        return self._values is not None

    @property
    def texts(self) -> npt.NDArray[Any]:
        """The valid values in row order, for tests that read each value (text classifiers)."""
        if self._texts is None:
            raise InvalidArgumentError(
                "This test reads text, but the column holds numbers or counted categories.",
                parameter="tests",
            )
        return self._texts

    @cached_property
    def size(self) -> int:
        if self._values is not None:
            return len(self._values)
        assert self._counts is not None
        return int(self._counts.sum())

    @cached_property
    def sorted_values(self) -> FloatArray:
        if self._values is None:
            raise InvalidArgumentError(
                "This test needs numbers, but the column holds categories.", parameter="tests"
            )
        return self._values if self._presorted else np.sort(self._values)

    @cached_property
    def value_counts(self) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64]]:
        """Distinct values and how often each occurs (numeric keys come sorted)."""
        if self._values is None:
            assert self._keys is not None and self._counts is not None
            present = self._counts > 0
            return self._keys[present], self._counts[present]
        ordered = self.sorted_values
        if len(ordered) == 0:
            return ordered, np.zeros(0, dtype=np.int64)
        starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
        counts = np.diff(np.append(starts, len(ordered))).astype(np.int64)
        return ordered[starts], counts

    @cached_property
    def distinct(self) -> int:
        """How many different values the sample holds."""
        if self._values is None:
            return len(self.value_counts[0])
        ordered = self.sorted_values
        return int(np.count_nonzero(ordered[1:] != ordered[:-1])) + (len(ordered) > 0)

    @cached_property
    def std(self) -> float:
        return float(np.std(self.sorted_values))


def aligned_counts(
    reference: Sample, current: Sample
) -> tuple[list[Any], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The union of both sides' values (sorted where they sort) and each side's count of each."""
    ref_keys, ref_counts = reference.value_counts
    cur_keys, cur_counts = current.value_counts
    if ref_keys.dtype.kind == "f" and cur_keys.dtype.kind == "f":
        keys = np.union1d(ref_keys, cur_keys)
        ref = np.zeros(len(keys), dtype=np.int64)
        cur = np.zeros(len(keys), dtype=np.int64)
        ref[np.searchsorted(keys, ref_keys)] = ref_counts
        cur[np.searchsorted(keys, cur_keys)] = cur_counts
        return keys.tolist(), ref, cur
    merged: dict[Any, list[int]] = {}
    for key, count in zip(ref_keys.tolist(), ref_counts.tolist(), strict=True):
        merged.setdefault(key, [0, 0])[0] += count
    for key, count in zip(cur_keys.tolist(), cur_counts.tolist(), strict=True):
        merged.setdefault(key, [0, 0])[1] += count
    try:
        ordered = sorted(merged)
    except TypeError:  # values of mixed types: sort by their text
        ordered = sorted(merged, key=str)
    ref = np.array([merged[k][0] for k in ordered], dtype=np.int64)
    cur = np.array([merged[k][1] for k in ordered], dtype=np.int64)
    return ordered, ref, cur


def unique_count(reference: Sample, current: Sample, *, at_most: int = FEW_VALUES + 1) -> int:
    """Distinct values of both sides together, or ``max`` of each side's when that exceeds
    ``at_most`` (enough to pick a test, without merging two long samples)."""
    larger = max(reference.distinct, current.distinct)
    return larger if larger > at_most else len(aligned_counts(reference, current)[0])


def binned_shares(reference: Sample, current: Sample) -> tuple[FloatArray, FloatArray]:
    """Each side's share of rows per bin: Sturges bins over both sides for a numeric reference
    with more than 20 values, one bin per value otherwise (Evidently's ``get_binned_data``)."""
    if (
        reference.kind is ColumnKind.NUMERIC
        and reference.is_numeric_storage
        and current.is_numeric_storage
        and reference.distinct > DISTANCE_BINS_MIN_UNIQUE
    ):
        ref, cur = reference.sorted_values, current.sorted_values
        low, high = min(ref[0], cur[0]), max(ref[-1], cur[-1])
        # numpy's "sturges" rule: width from the range and the row count, then equal bins.
        width = (high - low) / (np.log2(len(ref) + len(cur)) + 1.0)
        edges = np.linspace(low, high, int(np.ceil((high - low) / width)) + 1)
        return _histogram(ref, edges) / len(ref), _histogram(cur, edges) / len(cur)
    _, ref_counts, cur_counts = aligned_counts(reference, current)
    return ref_counts / reference.size, cur_counts / current.size


def _histogram(ordered: FloatArray, edges: FloatArray) -> FloatArray:
    """``np.histogram(ordered, edges)[0]`` for sorted data: half-open bins, the last one closed."""
    starts = np.searchsorted(ordered, edges[:-1], side="left")
    ends = np.append(np.searchsorted(ordered, edges[1:-1], side="left"), 0)
    ends[-1] = np.searchsorted(ordered, edges[-1], side="right")
    return (ends - starts).astype(np.float64)


@dataclass(frozen=True)
class StatTest:
    """A two-sample test: what it applies to, what it returns and when that means drift.

    ``measure`` is ``"p_value"`` (drift when the p-value falls below the threshold),
    ``"distance"`` (drift when the distance reaches the threshold) or ``"auc"`` (a classifier's
    held-out ROC AUC: drift when it exceeds the threshold, Evidently's rule).
    """

    name: str
    kinds: frozenset[ColumnKind]
    measure: Literal["p_value", "distance", "auc"]
    default_threshold: float
    description: str
    _compute: Callable[[Sample, Sample], tuple[float, float | None]]
    strict: bool = True  # p-value tests: drift when p < threshold (False: p <= threshold)

    def compute(self, reference: Any, current: Any) -> tuple[float, float | None]:
        """``(statistic, p_value)``; distances have no p-value. Nulls, NaN and inf are dropped."""
        ref = Sample.of(reference, parameter="reference")
        cur = Sample.of(current, parameter="current")
        for side, sample in (("reference", ref), ("current", cur)):
            if sample.size == 0:
                raise InvalidArgumentError(
                    f"The {self.name} test needs at least one value in {side} that is not null, "
                    f"NaN or infinite; got none ({sample.dropped} dropped).",
                    parameter=side,
                )
            if self.kinds == _NUMBERS and not sample.is_numeric_storage:
                raise InvalidArgumentError(
                    f"The {self.name} test needs numbers, but {side} holds categories; use "
                    "jensenshannon, psi or chisquare for categories.",
                    parameter=side,
                )
        return self._compute(ref, cur)

    def is_drift(self, statistic: float, p_value: float | None, threshold: float) -> bool:
        if self.measure == "distance":
            return bool(statistic >= threshold)
        if self.measure == "auc":
            return bool(statistic > threshold)
        assert p_value is not None
        return bool(p_value < threshold) if self.strict else bool(p_value <= threshold)


def _ks(ref: Sample, cur: Sample) -> tuple[float, float | None]:
    stats = require_extra("scipy.stats", "monitoring")
    result = stats.ks_2samp(ref.sorted_values, cur.sorted_values)
    return float(result.statistic), float(result.pvalue)


def _chisquare(ref: Sample, cur: Sample) -> tuple[float, float | None]:
    _, ref_counts, cur_counts = aligned_counts(ref, cur)
    if len(ref_counts) < 2:
        return 0.0, 1.0  # one value on both sides: nothing can have moved
    expected = ref_counts * (cur.size / ref.size)
    if np.any((expected == 0) & (cur_counts > 0)):
        return math.inf, 0.0  # a value the reference never had: certain drift
    stats = require_extra("scipy.stats", "monitoring")
    result = stats.chisquare(cur_counts, expected)
    return float(result.statistic), float(result.pvalue)


def _z(ref: Sample, cur: Sample) -> tuple[float, float | None]:
    """Two-proportion z-test on the share of the first value (in sorted order)."""
    keys, ref_counts, cur_counts = aligned_counts(ref, cur)
    if len(keys) < 2:
        return 0.0, 1.0
    p_ref = 1.0 - ref_counts[0] / ref.size
    p_cur = 1.0 - cur_counts[0] / cur.size
    pooled = (p_ref * ref.size + p_cur * cur.size) / (ref.size + cur.size)
    z = (p_ref - p_cur) / math.sqrt(pooled * (1 - pooled) * (1 / ref.size + 1 / cur.size))
    special = require_extra("scipy.special", "monitoring")
    return float(z), float(2 * (1 - special.ndtr(abs(z))))


def _wasserstein(ref: Sample, cur: Sample) -> tuple[float, float | None]:
    """First Wasserstein distance over the reference's standard deviation (at least 0.001).

    Computed as the area between the two quantile functions, which are step functions of the
    sorted samples: no merge of the data, and one subtraction when both sides are as long.
    """
    x, y = ref.sorted_values, cur.sorted_values
    n, m = len(x), len(y)
    if n == m:
        gaps = x - y
        distance = float(np.mean(np.abs(gaps, out=gaps)))
    else:
        # Quantile breakpoints i/n and j/m on the common denominator n*m, merged (radix sort).
        steps = np.concatenate((np.arange(n, dtype=np.int64) * m, np.arange(m, dtype=np.int64) * n))
        steps = np.unique(steps)
        widths = np.diff(np.append(steps, n * m))
        distance = float(np.sum(np.abs(x[steps // m] - y[steps // n]) * widths) / (n * m))
    return distance / max(ref.std, WASSERSTEIN_MIN_STD), None


def _jensenshannon(ref: Sample, cur: Sample) -> tuple[float, float | None]:
    """``scipy.spatial.distance.jensenshannon`` (natural log) of the binned shares."""
    p, q = binned_shares(ref, cur)
    p, q = p / p.sum(), q / q.sum()
    middle = (p + q) / 2
    divergence = 0.0
    for shares in (p, q):
        present = shares > 0  # 0 * log(0 / m) is 0; m > 0 wherever shares > 0
        divergence += float(np.sum(shares[present] * np.log(shares[present] / middle[present])))
    return math.sqrt(max(divergence / 2, 0.0)), None


def _text_auc(ref: Sample, cur: Sample) -> tuple[float, float | None]:
    return text_classifier_auc(ref.texts, cur.texts)[0], None


def _text_auc_p(ref: Sample, cur: Sample) -> tuple[float, float | None]:
    auc, held_out_ref, held_out_cur = text_classifier_auc(ref.texts, cur.texts)
    return auc, text_classifier_p_value(auc, held_out_ref, held_out_cur)


def _fill_zeros(shares: FloatArray) -> FloatArray:
    """Evidently's PSI epsilon: empty bins get 1e-4, or a millionth of the smallest share."""
    nonzero = shares[shares != 0]
    if len(nonzero) == len(shares):
        return shares
    smallest = float(nonzero.min())
    return np.where(shares == 0, smallest / 1e6 if smallest <= 1e-4 else 1e-4, shares)


def _psi(ref: Sample, cur: Sample) -> tuple[float, float | None]:
    ref_shares, cur_shares = binned_shares(ref, cur)
    ref_shares, cur_shares = _fill_zeros(ref_shares), _fill_zeros(cur_shares)
    return float(np.sum((ref_shares - cur_shares) * np.log(ref_shares / cur_shares))), None


_NUMBERS = frozenset({ColumnKind.NUMERIC})
_BOTH = frozenset({ColumnKind.NUMERIC, ColumnKind.CATEGORICAL})
_TEXT = frozenset({ColumnKind.TEXT})
STAT_TESTS: dict[str, StatTest] = {
    test.name: test
    for test in (
        StatTest("ks", _NUMBERS, "p_value", 0.05,
                 "two-sample Kolmogorov-Smirnov", _ks, strict=False),
        StatTest("chisquare", _BOTH, "p_value", 0.05,
                 "chi-squared goodness of fit to the reference's shares", _chisquare),
        StatTest("z", _BOTH, "p_value", 0.05,
                 "two-proportion z-test on the first value's share", _z),
        StatTest("wasserstein", _NUMBERS, "distance", 0.1,
                 "Wasserstein-1 distance over the reference's std", _wasserstein),
        StatTest("jensenshannon", _BOTH, "distance", 0.1,
                 "Jensen-Shannon distance (natural log) of binned shares", _jensenshannon),
        StatTest("psi", _BOTH, "distance", 0.1,
                 "population stability index of binned shares", _psi),
    )
}  # fmt: skip

# Text columns (strings, most of them distinct) are Evidently's domain classifier's: kept apart
# from STAT_TESTS, whose conformance suite counts values, which a text classifier does not.
TEXT_TESTS: dict[str, StatTest] = {
    test.name: test
    for test in (
        StatTest("text_auc", _TEXT, "auc", 0.55,
                 "held-out ROC AUC of a word TF-IDF classifier telling the sides apart",
                 _text_auc),
        StatTest("text_auc_p", _TEXT, "p_value", 0.05,
                 "p-value of that AUC against a classifier that guesses", _text_auc_p),
    )
}  # fmt: skip


def _applies(test: StatTest, kind: str) -> bool:
    """Whether ``test`` may run on a column of ``kind``: text may also be counted as categories."""
    return kind in test.kinds or (kind == ColumnKind.TEXT and ColumnKind.CATEGORICAL in test.kinds)


def get_stat_test(name: str, kind: str | None = None, *, parameter: str = "tests") -> StatTest:
    """The test called ``name``, checked to apply to columns of ``kind``."""
    every = STAT_TESTS | TEXT_TESTS
    test = every.get(name) if isinstance(name, str) else None
    if test is None:
        raise InvalidArgumentError(
            f"Expected a test name among {', '.join(sorted(every))}; got {name!r}.",
            parameter=parameter,
        )
    if kind is not None and not _applies(test, kind):
        usable = sorted(t.name for t in every.values() if _applies(t, kind))
        raise InvalidArgumentError(
            f"The {name} test does not apply to {kind} columns; use one of {', '.join(usable)}.",
            parameter=parameter,
        )
    return test


def default_test(kind: str, reference_rows: int, unique_values: int) -> StatTest:
    """Evidently 0.7's choice: p-value tests up to 1,000 reference rows, distances above;
    numeric columns with at most 5 distinct values (both sides together) count as categories;
    text gets the classifier's AUC above 1,000 reference rows, its p-value up to them."""
    if kind == ColumnKind.TEXT:
        return TEXT_TESTS["text_auc" if reference_rows > SMALL_SAMPLE_ROWS else "text_auc_p"]
    if kind == ColumnKind.NUMERIC and unique_values > FEW_VALUES:
        return STAT_TESTS["ks" if reference_rows <= SMALL_SAMPLE_ROWS else "wasserstein"]
    if reference_rows > SMALL_SAMPLE_ROWS:
        return STAT_TESTS["jensenshannon"]
    return STAT_TESTS["chisquare" if unique_values > 2 else "z"]
