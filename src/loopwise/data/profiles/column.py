"""One column's profile: exact counts and moments beside mergeable sketches of its values.

Sketches (Apache DataSketches) keep memory fixed whatever the number of rows: a KLL quantile
sketch for numbers, a frequent-items sketch for categories, an HLL sketch of distinct values.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

import datasketches as ds
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopwise.data.kinds import ColumnKind
from loopwise.errors import InvalidArgumentError

__all__ = ["QUANTILE_RANK_ERROR", "ColumnProfile", "dtype_name"]

KLL_K = 200
HLL_LG_K = 12
ITEMS_LG_MAP = 10
QUANTILE_RANK_ERROR: float = ds.kll_doubles_sketch.get_normalized_rank_error(KLL_K, False)
"""How far (as a share of the values) a quantile's true rank may be from the one asked for:
about 1.3% with 99% confidence."""


def dtype_name(dtype: pa.DataType) -> str:
    if pa.types.is_dictionary(dtype):
        return f"dictionary<{dtype_name(dtype.value_type)}>"
    return "string" if pa.types.is_large_string(dtype) else str(dtype)


def _as_float64(array: pa.Array) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Numbers as float64, nulls as NaN; times as integer ticks of their unit.

    Integers beyond 2**53 (nanosecond timestamps among them) become the nearest float: a
    summary may round them, but must not refuse them.
    """
    if pa.types.is_temporal(array.type):
        array = array.cast(pa.int64() if array.type.bit_width == 64 else pa.int32())
    if not pa.types.is_float64(array.type):
        array = array.cast(pa.float64(), safe=False)
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class ColumnProfile:
    """The summary of one column: counts, and sketches of its values.

    ``count`` is every row seen (nulls included); ``nulls`` counts missing values and NaN;
    ``infinite`` counts ±infinity, which are kept out of min, max, mean, variance and the
    quantiles (so one stray infinity does not make them useless).
    """

    def __init__(self, kind: ColumnKind | str, dtype: str) -> None:
        self.kind = ColumnKind(kind)
        self.dtype = dtype
        self.count = 0
        self.nulls = 0
        self.infinite = 0
        self.min: float | None = None
        self.max: float | None = None
        self.mean: float | None = None
        self._m2 = 0.0  # sum of squared deviations from the mean (Chan et al.)
        self._quantiles = ds.kll_doubles_sketch(KLL_K) if self.kind is ColumnKind.NUMERIC else None
        self._distinct = ds.hll_sketch(HLL_LG_K, ds.HLL_8)
        self._items = (
            ds.frequent_strings_sketch(ITEMS_LG_MAP)
            if self.kind is ColumnKind.CATEGORICAL
            else None
        )

    # -- reading -----------------------------------------------------------------------------
    @property
    def values(self) -> int:
        """Rows with a value: not null, not NaN, and (for numbers) finite."""
        return self.count - self.nulls - self.infinite

    @property
    def variance(self) -> float | None:
        """Sample variance (``ddof=1``, as pandas) of the finite values; None below two."""
        n = self.values
        return None if self.kind is not ColumnKind.NUMERIC or n < 2 else self._m2 / (n - 1)

    def quantile(self, q: float) -> float | None:
        """The value at rank ``q`` (0 ≤ q ≤ 1), within ``QUANTILE_RANK_ERROR`` in rank."""
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 1:
            raise InvalidArgumentError(
                f"Expected q between 0 and 1, got {q!r}. Use e.g. 0.5 for the median.",
                parameter="q",
            )
        if self._quantiles is None or self._quantiles.is_empty():
            return None
        return float(self._quantiles.get_quantile(float(q), True))

    def distinct(self) -> float:
        """An estimate of how many distinct values the column holds (about ±1.6%, 1 sd)."""
        return float(self._distinct.get_estimate())

    def top(self, k: int = 10) -> list[tuple[str, int]]:
        """The ``k`` most frequent categories (as text) and their estimated counts.

        Exact while a column has fewer than ~700 distinct values; beyond that a count may be
        off by at most ``0.0035 * values``. Numeric columns have no categories: ``[]``.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidArgumentError(f"Expected k >= 1, got {k!r}.", parameter="k")
        if self._items is None or self._items.is_empty():
            return []
        rows = self._items.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_NEGATIVES)
        ranked = sorted(((str(r[0]), int(r[1])) for r in rows), key=lambda r: (-r[1], r[0]))
        return ranked[:k]

    def histogram(self, bins: int = 20) -> tuple[list[float], list[int]]:
        """Equal-width bins from min to max: ``(edges, counts)``, counts summing to ``values``.

        Drawn from the quantile sketch, so any binning can be asked for after merging; each
        count is within about ``2 * QUANTILE_RANK_ERROR * values`` of the truth.
        """
        if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= 10_000:
            raise InvalidArgumentError(
                f"Expected bins between 1 and 10000, got {bins!r}.", parameter="bins"
            )
        if self._quantiles is None:
            raise InvalidArgumentError(
                f"Expected a numeric column for a histogram, got a {self.kind} one "
                f"({self.dtype}). Use top() for the counts of its categories.",
                parameter="bins",
            )
        if self.min is None or self.max is None or self._quantiles.is_empty():
            return [], []
        if self.min == self.max:
            return [self.min, self.max], [self.values]
        edges = np.linspace(self.min, self.max, bins + 1).tolist()
        ranks = [0.0, *self._quantiles.get_cdf(edges[1:-1]), 1.0][: bins + 1]
        cumulative = [round(r * self.values) for r in ranks]
        cumulative[-1] = self.values
        return edges, [b - a for a, b in itertools.pairwise(cumulative)]

    # -- building ----------------------------------------------------------------------------
    def update(self, array: pa.Array) -> None:
        """Add one chunk of the column's values (an Arrow array of this column's kind)."""
        self.count += len(array)
        if self.kind is ColumnKind.NUMERIC:
            self._update_numeric(_as_float64(array))
        elif pa.types.is_null(array.type):
            self.nulls += len(array)
        else:
            self._update_categorical(array)

    def _update_numeric(self, values: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        finite_mask = np.isfinite(values)
        finite = values if finite_mask.all() else values[finite_mask]
        nan = int(np.isnan(values).sum()) if finite.size < values.size else 0
        self.nulls += nan
        self.infinite += values.size - finite.size - nan
        if finite.size == 0:
            return
        n, mean = finite.size, float(finite.mean())
        m2 = float(np.square(finite - mean).sum())
        self._absorb_moments(n, mean, m2, float(finite.min()), float(finite.max()))
        assert self._quantiles is not None
        # The sketch's batch update takes only writable arrays; Arrow's zero-copy ones are not.
        self._quantiles.update(finite if finite.flags.writeable else finite.copy())
        # Distinct counts need one sketch update per value: feed each chunk's distinct values.
        update = self._distinct.update
        for value in pc.unique(pa.array(finite)).to_numpy().tolist():
            update(value)

    def _update_categorical(self, array: pa.Array) -> None:
        self.nulls += array.null_count
        counts = pc.value_counts(array)
        keys = counts.field("values")
        if pa.types.is_dictionary(keys.type):
            keys = keys.dictionary_decode()
        keys = keys.cast(pa.string()).to_pylist()
        assert self._items is not None
        item, seen = self._items.update, self._distinct.update
        for key, count in zip(keys, counts.field("counts").to_pylist(), strict=True):
            if key is not None:
                item(key, count)
                seen(key)

    def _absorb_moments(self, n: int, mean: float, m2: float, low: float, high: float) -> None:
        """Chan et al.'s parallel update: the exact mean and variance of the union."""
        before = self.values - n  # ``count`` and ``nulls`` were updated already
        if self.mean is None or before == 0:
            self.mean, self._m2 = mean, m2
        else:
            total = before + n
            delta = mean - self.mean
            self.mean += delta * n / total
            self._m2 += m2 + delta * delta * before * n / total
        self.min = low if self.min is None else min(self.min, low)
        self.max = high if self.max is None else max(self.max, high)

    def absorb(self, other: ColumnProfile) -> None:
        """Fold ``other`` (a summary of other rows of this column) into this one."""
        self.count += other.count
        self.nulls += other.nulls
        self.infinite += other.infinite
        if other.mean is not None and other.min is not None and other.max is not None:
            self._absorb_moments(other.values, other.mean, other._m2, other.min, other.max)
        union = ds.hll_union(HLL_LG_K)
        union.update(self._distinct)
        union.update(other._distinct)
        self._distinct = union.get_result(ds.HLL_8)
        if self._quantiles is not None and other._quantiles is not None:
            self._quantiles.merge(other._quantiles)
        if self._items is not None and other._items is not None:
            self._items.merge(other._items)

    def copy(self) -> ColumnProfile:
        """An independent copy: merging into it leaves this one as it is."""
        return ColumnProfile.from_json(self.to_json())

    # -- serialising -------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "dtype": self.dtype,
            "count": self.count,
            "nulls": self.nulls,
            "infinite": self.infinite,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "m2": self._m2,
            "quantiles": None if self._quantiles is None else _b64(self._quantiles.serialize()),
            "distinct": _b64(self._distinct.serialize_compact()),
            "items": None if self._items is None else _b64(self._items.serialize()),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ColumnProfile:
        column = cls(doc["kind"], str(doc["dtype"]))
        column.count, column.nulls, column.infinite = (
            int(doc["count"]),
            int(doc["nulls"]),
            int(doc["infinite"]),
        )
        column.min, column.max, column.mean = (
            None if doc[k] is None else float(doc[k]) for k in ("min", "max", "mean")
        )
        column._m2 = float(doc["m2"])
        column._distinct = ds.hll_sketch.deserialize(base64.b64decode(doc["distinct"]))
        if column._quantiles is not None:
            column._quantiles = ds.kll_doubles_sketch.deserialize(
                base64.b64decode(doc["quantiles"])
            )
        if column._items is not None:
            column._items = ds.frequent_strings_sketch.deserialize(base64.b64decode(doc["items"]))
        return column

    def __repr__(self) -> str:
        return (
            f"ColumnProfile(kind={self.kind.value!r}, dtype={self.dtype!r}, count={self.count}, "
            f"nulls={self.nulls}, distinct≈{self.distinct():.0f})"
        )
