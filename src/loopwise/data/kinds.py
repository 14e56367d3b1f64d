"""Column kinds, the one vocabulary profiles, validation and drift share: a column is summarised
and compared as numbers, as categories, or (drift only) as free text.

The values are the strings profiles have always stored (``"numeric"``, ``"categorical"``), so
stored profiles read back unchanged and reports show what they showed; ``"text"`` is a string
column most of whose values are distinct (names, tickets, comments), which drift tests with a
text classifier rather than by counting values. Profiles and validation never infer it. Validation's type families
(``integer``, ``float``, ``string``, …: the physical type the ``type`` rule checks) are a finer
notion than a kind; :func:`type_family_kind` says which kind each family is.
"""

from __future__ import annotations

from enum import StrEnum

import pyarrow as pa

__all__ = ["ColumnKind", "arrow_kind", "summary_kind", "type_family_kind"]


class ColumnKind(StrEnum):
    """How a column is summarised and compared: as numbers, as categories, or as free text."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    TEXT = "text"


def arrow_kind(dtype: pa.DataType) -> ColumnKind | None:
    """How drift compares a column of this Arrow type: integers, floats and decimals as numbers;
    text, booleans and dictionaries as categories; None for anything else (times, nulls, lists,
    structs, bytes)."""
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return ColumnKind.NUMERIC
    if (
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_boolean(dtype)
        or pa.types.is_dictionary(dtype)
    ):
        return ColumnKind.CATEGORICAL
    return None


def summary_kind(dtype: pa.DataType) -> ColumnKind | None:
    """How a profile summarises a column of this Arrow type: as :func:`arrow_kind`, and also times
    as numbers (their integer ticks) and an all-null column as categories; a dictionary only when
    its values have a kind. None for types no summary fits (lists, structs, bytes)."""
    if pa.types.is_dictionary(dtype):
        return ColumnKind.CATEGORICAL if summary_kind(dtype.value_type) is not None else None
    if pa.types.is_null(dtype):
        return ColumnKind.CATEGORICAL
    if pa.types.is_temporal(dtype):
        return ColumnKind.NUMERIC
    return arrow_kind(dtype)


_FAMILY_KINDS = {
    "integer": ColumnKind.NUMERIC,
    "float": ColumnKind.NUMERIC,
    "string": ColumnKind.CATEGORICAL,
    "category": ColumnKind.CATEGORICAL,
    "bool": ColumnKind.CATEGORICAL,
}


def type_family_kind(family: str) -> ColumnKind | None:
    """The kind of a validation type family: ``integer`` and ``float`` are numeric; ``string``,
    ``category`` and ``bool`` categorical; ``datetime``, ``null`` and ``mixed`` have none
    (validation checks no range or mean of times, unlike profiles, which summarise their ticks)."""
    return _FAMILY_KINDS.get(family)
