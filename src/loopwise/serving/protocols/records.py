"""Plain JSON records (``/predict``) and the column checks the other formats share: a body's
JSON, records as columns, columns of one length."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from loopwise.errors import InvalidArgumentError
from loopwise.serving.schema import NO_SIGNATURE_LIMIT, ColumnLimit, Columns, shown

__all__ = ["load_json", "parse_records", "records_to_columns", "same_lengths"]


def same_lengths(columns: Mapping[str, Any], where: str) -> None:
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise InvalidArgumentError(
            f"Input columns have different lengths {shown(sorted(lengths))}; every column needs "
            "one value per row.",
            field=where,
        )
    if lengths == {0}:
        raise InvalidArgumentError("The input has no rows.", field=where)


def records_to_columns(records: Any, where: str, limit: ColumnLimit) -> Columns:
    if (
        not isinstance(records, list)
        or not records
        or not all(isinstance(r, dict) for r in records)
    ):
        raise InvalidArgumentError(
            'Expected a non-empty JSON list of records, e.g. [{"AGEP": 35, "SEX": 1}], or '
            '{"records": [...]}.',
            field=where,
        )
    if len(records) == 1:
        limit.check(len(records[0]), where)
        return {str(k): [v] for k, v in records[0].items()}
    keys: dict[str, None] = {}
    most = limit.most
    for record in records:
        keys.update(dict.fromkeys(record))
        if len(keys) > most:
            limit.check(len(keys), where, at_least=True)
    return {str(k): [r.get(k) for r in records] for k in keys}


def parse_records(body: Any, limit: ColumnLimit = NO_SIGNATURE_LIMIT) -> Columns:
    """``/predict`` input: a list of records (or ``{"records": [...]}``), as columns."""
    records = body.get("records") if isinstance(body, dict) else body
    return records_to_columns(records, "records", limit)


def load_json(body: bytes) -> Any:
    """A request body's JSON, or an error that says where it stopped parsing."""
    try:
        return orjson.loads(body)
    except ValueError as exc:
        raise InvalidArgumentError(
            f"The body is not valid JSON: {exc}. Send a JSON document with "
            "Content-Type: application/json."
        ) from exc
