"""A table's profile: per-column summaries of a dataset built from mergeable sketches.

A profile is computed in one pass over chunks of bounded size, so its memory does not grow with
the data; profiles of parts (chunks, files, machines) merge into the profile of the whole.
Exact where merging can be exact (counts, min, max, mean, variance), sketched elsewhere.
"""

from __future__ import annotations

import binascii
import json
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow as pa

from loopwise.data.chunks import iter_batches
from loopwise.data.kinds import ColumnKind, summary_kind
from loopwise.data.profiles.column import ColumnProfile, dtype_name
from loopwise.errors import InvalidArgumentError

__all__ = ["Profile", "profile", "table_profile"]

FORMAT = "loopwise.profile"
FORMAT_VERSION = 1
# The kinds a profile summarises (never text, which only drift infers); a tuple: a bad document
# may hold a list.
_KINDS = (ColumnKind.NUMERIC.value, ColumnKind.CATEGORICAL.value)


class Profile:
    """Per-column profiles of a dataset; see :func:`profile`.

    ``skipped`` names the columns whose type no summary fits (lists, structs, bytes) and
    their types: they are recorded, not silently dropped.
    """

    def __init__(self) -> None:
        self.num_rows = 0
        self.columns: dict[str, ColumnProfile] = {}
        self.skipped: dict[str, str] = {}

    def _add_batch(self, batch: pa.RecordBatch, requested: bool) -> None:
        names = batch.schema.names
        if len(set(names)) != len(names):
            repeated = sorted({n for n in names if names.count(n) > 1})
            raise InvalidArgumentError(
                f"Expected distinct column names, got {repeated!r} more than once. Rename "
                "the columns so that each names one.",
                parameter="data",
            )
        for field, array in zip(batch.schema, batch.columns, strict=True):
            kind = summary_kind(field.type)
            if kind is None:
                if requested:
                    raise InvalidArgumentError(
                        f"Expected columns of number, text, boolean, categorical or time types, "
                        f"got column {field.name!r} of type {field.type}. Leave it out of "
                        "columns=.",
                        parameter="columns",
                        column=field.name,
                    )
                self._skip(field.name, dtype_name(field.type))
                continue
            new = ColumnProfile(kind, dtype_name(field.type))
            new.update(array)
            self._absorb_column(field.name, new)
        self.num_rows += batch.num_rows
        self._pad_missing()

    def _skip(self, name: str, dtype: str) -> None:
        if name in self.columns:
            _changed_type(name, self.columns[name].dtype, dtype)
        self.skipped[name] = dtype

    def _absorb_column(self, name: str, new: ColumnProfile) -> None:
        if name in self.skipped:
            _changed_type(name, self.skipped[name], new.dtype)
        old = self.columns.get(name)
        if old is None:
            self.columns[name] = new
            return
        # A column that held only nulls so far (Arrow's null type) takes the type it shows next.
        if new.dtype == "null" or old.dtype == "null":
            keep, other = (old, new) if new.dtype == "null" else (new, old)
            keep.count += other.count
            keep.nulls += other.nulls
            self.columns[name] = keep
            return
        if old.kind != new.kind:
            _changed_type(name, f"{old.dtype} ({old.kind})", f"{new.dtype} ({new.kind})")
        if old.dtype != new.dtype:
            old.dtype = "|".join(sorted(set(old.dtype.split("|")) | {new.dtype}))
        old.absorb(new)

    def _pad_missing(self) -> None:
        """Rows of parts that lacked a column count as its nulls, as in ``pd.concat``."""
        for column in self.columns.values():
            missing = self.num_rows - column.count
            column.count += missing
            column.nulls += missing

    def merge(self, other: Profile) -> Profile:
        """The profile of both datasets' rows together (neither input changes)."""
        if not isinstance(other, Profile):
            raise InvalidArgumentError(
                f"Expected a Profile to merge with, got {type(other).__name__}.",
                parameter="other",
            )
        merged = Profile()
        merged.num_rows = self.num_rows
        merged.columns = {name: c.copy() for name, c in self.columns.items()}
        merged.skipped = dict(self.skipped)
        merged._pad_missing()
        for name, dtype in other.skipped.items():
            merged._skip(name, dtype)
        for name, column in other.columns.items():
            merged._absorb_column(name, column.copy())
        merged.num_rows += other.num_rows
        merged._pad_missing()
        return merged

    def to_bytes(self) -> bytes:
        """Compact, versioned JSON (sketches as base64); never pickle."""
        doc = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "num_rows": self.num_rows,
            "skipped": self.skipped,
            "columns": [{"name": n, **c.to_json()} for n, c in self.columns.items()],
        }
        return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Profile:
        """Read what :meth:`to_bytes` wrote; a clear error for anything else."""
        expected = f"Expected a Loopwise profile (JSON, format {FORMAT!r} version {FORMAT_VERSION})"
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidArgumentError(
                f"{expected} as bytes, got {type(data).__name__}.", parameter="data"
            )
        try:
            doc = json.loads(bytes(data))
            if doc.get("format") != FORMAT or doc.get("version") != FORMAT_VERSION:
                raise ValueError(f"format {doc.get('format')!r} version {doc.get('version')!r}")
            result = cls()
            result.num_rows = int(doc["num_rows"])
            result.skipped = {str(k): str(v) for k, v in doc["skipped"].items()}
            for column in doc["columns"]:
                if column["kind"] not in _KINDS:
                    raise ValueError(f"unknown column kind {column['kind']!r}")
                result.columns[str(column["name"])] = ColumnProfile.from_json(column)
        except (ValueError, KeyError, TypeError, AttributeError, RuntimeError) as exc:
            detail = "not JSON" if isinstance(exc, binascii.Error) else str(exc)[:200]
            raise InvalidArgumentError(
                f"{expected}, got bytes that are not one ({detail}). Was it written by "
                "Profile.to_bytes()? A newer Loopwise may have written it: upgrade.",
                parameter="data",
            ) from exc
        return result

    def to_dict(self, top_k: int = 10) -> dict[str, Any]:
        """A plain summary for JSON output (not a serialisation: see :meth:`to_bytes`)."""
        columns = {}
        for name, c in self.columns.items():
            variance = c.variance
            columns[name] = {
                "kind": c.kind.value,
                "dtype": c.dtype,
                "count": c.count,
                "nulls": c.nulls,
                "infinite": c.infinite,
                "min": c.min,
                "max": c.max,
                "mean": c.mean,
                "std": None if variance is None else math.sqrt(variance),
                "quantiles": {f"p{round(q * 100):02d}": c.quantile(q) for q in _QUANTILES},
                "distinct": c.distinct(),
                "top": c.top(top_k),
            }
        return {"num_rows": self.num_rows, "columns": columns, "skipped": dict(self.skipped)}

    def to_frame(self) -> pd.DataFrame:
        """One row per column, for display: counts, spread, distinct values, top categories."""
        rows = []
        for name, c in self.columns.items():
            variance = c.variance
            rows.append(
                {
                    "column": name,
                    "kind": c.kind.value,
                    "dtype": c.dtype,
                    "count": c.count,
                    "nulls": c.nulls,
                    "null_share": c.nulls / c.count if c.count else math.nan,
                    "infinite": c.infinite,
                    "min": c.min,
                    "p50": c.quantile(0.5),
                    "max": c.max,
                    "mean": c.mean,
                    "std": None if variance is None else math.sqrt(variance),
                    "distinct": round(c.distinct()),
                    "top": ", ".join(f"{v} ({n})" for v, n in c.top(3)),
                }
            )
        return pd.DataFrame(rows, columns=_FRAME_COLUMNS)

    def __repr__(self) -> str:
        return f"Profile(num_rows={self.num_rows}, columns={list(self.columns)[:10]!r})"


_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
_FRAME_COLUMNS = [
    "column", "kind", "dtype", "count", "nulls", "null_share", "infinite", "min", "p50", "max",
    "mean", "std", "distinct", "top",
]  # fmt: skip


def _changed_type(name: str, before: str, after: str) -> None:
    raise InvalidArgumentError(
        f"Expected column {name!r} to keep one type, but it was {before} and is now {after}. "
        "Cast it to one type in every chunk (e.g. df[col].astype('float64')).",
        parameter="data",
        column=name,
    )


def profile(
    data: Any, *, columns: Sequence[str] | None = None, chunk_rows: int = 100_000
) -> Profile:
    """Profile ``data`` in one pass of at most ``chunk_rows`` rows at a time.

    ``data`` is a pandas DataFrame, a pyarrow Table, a Parquet file path (read batch by
    batch, never whole) or an iterable of DataFrames / RecordBatches. Zero rows give an
    empty profile (counts 0, statistics None), the identity of :meth:`Profile.merge`.
    """
    result = Profile()
    for batch in iter_batches(data, columns=columns, chunk_rows=chunk_rows):
        result._add_batch(batch, requested=columns is not None)
    if not result.columns:
        found = f"only columns of unsupported types {result.skipped}" if result.skipped else "none"
        raise InvalidArgumentError(
            f"Expected at least one column of number, text, boolean or time type to profile, "
            f"got {found}.",
            parameter="data",
        )
    return result


def table_profile(table: pa.Table) -> Profile | None:
    """The profile ``log_dataset`` keeps for a version; None where none fits (no column of a
    supported type, or repeated column names), so that logging never fails for its sake."""
    names = table.schema.names
    if len(set(names)) != len(names):  # which of two columns named "a" would it describe?
        return None
    if not any(summary_kind(field.type) is not None for field in table.schema):
        return None
    return profile(table)
