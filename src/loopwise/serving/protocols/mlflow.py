"""MLflow's scoring formats at ``/invocations``: ``dataframe_split``, ``dataframe_records``,
``instances``, ``inputs`` and CSV."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import numpy as np
import pandas as pd

from loopwise.errors import InvalidArgumentError
from loopwise.serving.protocols.records import load_json, records_to_columns, same_lengths
from loopwise.serving.schema import NO_SIGNATURE_LIMIT, ColumnLimit, Columns, Inputs, quoted, shown

__all__ = ["csv_columns", "parse_invocations"]


def _split_to_columns(value: Any, limit: ColumnLimit) -> Columns:
    if not isinstance(value, dict) or "columns" not in value or "data" not in value:
        raise InvalidArgumentError(
            "dataframe_split needs 'columns' and 'data' (and optionally 'index').",
            field="dataframe_split",
        )
    names, data = value["columns"], value["data"]
    if not isinstance(names, list) or not names or not isinstance(data, list) or not data:
        raise InvalidArgumentError(
            "dataframe_split needs a non-empty list 'columns' and a non-empty list of rows "
            "'data', e.g. {'columns': ['AGEP'], 'data': [[35]]}.",
            field="dataframe_split",
        )
    limit.check(len(names), "dataframe_split")
    width = len(names)
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != width:
            raise InvalidArgumentError(
                f"dataframe_split row {i} has "
                f"{len(row) if isinstance(row, list) else type(row).__name__} values; expected "
                f"a list of {width}, one per column {shown(names)}.",
                field=f"dataframe_split.data[{i}]",
            )
    if len(data) == 1:
        return {n if type(n) is str else str(n): [v] for n, v in zip(names, data[0], strict=True)}
    names = [n if type(n) is str else str(n) for n in names]
    return {n: list(col) for n, col in zip(names, zip(*data, strict=True), strict=True)}


_FIRST_LINE = re.compile(rb"[^\r\n]*")


def csv_columns(body: bytes) -> int:
    """How many columns a CSV body's header has, without parsing the rest of the body: commas
    in the first line, or the csv module's first record when the header has quotes."""
    line = _FIRST_LINE.match(body)
    first = line.group() if line is not None else b""
    if b'"' not in first:
        return first.count(b",") + 1
    try:
        return len(next(csv.reader(io.StringIO(body.decode("utf-8", "replace"), newline="")), []))
    except csv.Error:  # (e.g. a NUL byte) pandas will say what is wrong; count commas meanwhile
        return first.count(b",") + 1


def _read_csv(body: bytes, limit: ColumnLimit) -> Columns:
    limit.check(csv_columns(body), "The CSV body")
    try:
        frame = pd.read_csv(io.BytesIO(body))
    except (ValueError, pd.errors.ParserError) as exc:
        raise InvalidArgumentError(
            f"Could not read the CSV body: {quoted(str(exc), 200)}. Send a header line of column "
            "names, then one line per row.",
        ) from exc
    if frame.empty:
        raise InvalidArgumentError("The CSV body has no rows.")
    limit.check(len(frame.columns), "The CSV body")  # (a header the count above misjudged)
    return {str(c): frame[c].to_numpy() for c in frame.columns}


def parse_invocations(
    body: bytes, content_type: str, limit: ColumnLimit = NO_SIGNATURE_LIMIT
) -> Inputs:
    """MLflow's scoring formats (``/invocations``), by content type and top-level key.

    (JSON objects are checked with ``isinstance(…, dict)``: orjson makes dicts, and the check
    is much cheaper than one against ``Mapping``.)"""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "text/csv":
        return _read_csv(body, limit)
    if kind != "application/json":
        raise InvalidArgumentError(
            f"Expected Content-Type application/json or text/csv, got {quoted(content_type)}.",
            content_type=content_type[:100],
        )
    payload = load_json(body)
    formats = ("dataframe_split", "dataframe_records", "instances", "inputs")
    keys = [k for k in formats if isinstance(payload, dict) and k in payload]
    if len(keys) != 1:
        raise InvalidArgumentError(
            f"Expected a JSON object with exactly one of {list(formats)}; got "
            f"{shown(sorted(payload)) if isinstance(payload, dict) else type(payload).__name__}.",
            expected=list(formats),
        )
    key = keys[0]
    value = payload[key]
    if key == "dataframe_split":
        return _split_to_columns(value, limit)
    if key == "dataframe_records":
        return records_to_columns(value, key, limit)
    try:
        if isinstance(value, dict):  # named tensors: one column each
            limit.check(len(value), key)
            columns = {str(k): np.asarray(v).ravel() for k, v in value.items()}
            same_lengths(columns, key)
            return columns
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return records_to_columns(value, key, limit)
        array = np.asarray(value)
    except (TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, InvalidArgumentError):
            raise
        raise InvalidArgumentError(
            f"Could not read {key!r}: {quoted(str(exc), 200)}.", field=key
        ) from exc
    if array.ndim == 0 or array.shape[0] == 0:
        raise InvalidArgumentError(f"{key!r} holds no rows.", field=key)
    return array
