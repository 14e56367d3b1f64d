"""Spooled predictions to Parquet segments (one per project, deployment and hour) and back.

Each spooled record is one JSON object (see ``predictions._encode``). A batch is parsed by
Arrow's JSON reader, in C++ and without holding the GIL, so draining thousands of records a
second costs the inference server's event loop little. Only a batch that Arrow cannot type
(a column that is a number in one row and text in another) takes a slower path in Python,
which keeps such a column as JSON text. Columns: ``COLUMNS``, then ``input.<name>`` and
``output.<name>``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from loopwise.store.base import Store
from loopwise.store.checks import HOUR_MS
from loopwise.store.entities import PredictionSegment

# pyarrow and pandas are imported inside the functions that use them: they take ~0.6 s to
# import, and most processes that import the store never touch the prediction log.
if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["COLUMNS", "INPUT_PREFIX", "OUTPUT_PREFIX", "read_segment", "write_segments"]

COLUMNS = (
    "request_id",
    "deployment",
    "model",
    "version",
    "timestamp_ms",
    "latency_ms",
    "shadow",
)
"""The fixed columns of the log; then ``input.<name>`` and ``output.<name>`` columns follow.
Segments written before ``shadow`` existed lack it; their rows read back as live (False)."""
INPUT_PREFIX = "input."
OUTPUT_PREFIX = "output."
JSON_TEXT = {b"loopwise.encoding": b"json"}
"""Field metadata of a column kept as JSON text (values of mixed types)."""
FORMAT = {b"loopwise.format": b"prediction-log/1"}


def _fixed_schema() -> pa.Schema:
    import pyarrow as pa  # deferred: heavy (see top)

    return pa.schema(
        [
            ("project", pa.string()),
            ("deployment", pa.string()),
            ("request_id", pa.string()),
            ("model", pa.string()),
            ("version", pa.int64()),
            ("timestamp_ms", pa.int64()),
            ("latency_ms", pa.float64()),
            ("shadow", pa.bool_()),
        ]
    )


def _has_struct(kind: pa.DataType) -> bool:
    import pyarrow as pa  # deferred: heavy (see top)

    if pa.types.is_struct(kind) or pa.types.is_map(kind):
        return True
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _has_struct(kind.value_type)
    return False


def _typed_table(payloads: Sequence[bytes | memoryview]) -> pa.Table | None:
    """The batch as a flat table via Arrow's JSON reader; None if it cannot type a column."""
    import pyarrow as pa  # deferred: heavy (see top)
    import pyarrow.json as pa_json  # deferred: heavy (see top)

    data = b"\n".join(payloads)
    options = pa_json.ParseOptions(
        explicit_schema=_fixed_schema(), unexpected_field_behavior="infer"
    )
    # One block, so the types are inferred from every row, not from the first megabyte.
    block = pa_json.ReadOptions(block_size=max(len(data) + 1, 1 << 20))
    try:
        table = pa_json.read_json(io.BytesIO(data), read_options=block, parse_options=options)
    except pa.ArrowInvalid:
        return None
    table = table.flatten()  # the "input" and "output" structs become "input.x", "output.y"
    if any(_has_struct(f.type) for f in table.schema):
        return None  # dicts inside inputs would come back with every key of every row
    return table


def _column(values: list[Any]) -> tuple[pa.DataType, pa.Array, bool]:
    """A typed column where Arrow can infer one type; otherwise JSON text (the flag)."""
    import pyarrow as pa  # deferred: heavy (see top)

    try:
        array = pa.array(values)
        if not _has_struct(array.type):
            return array.type, array, False
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        pass
    text = [None if v is None else json.dumps(v, separators=(",", ":")) for v in values]
    return pa.string(), pa.array(text, pa.string()), True


def _python_table(payloads: Sequence[bytes | memoryview]) -> pa.Table:
    """The slow path: parse in Python and keep columns of mixed types as JSON text."""
    import pyarrow as pa  # deferred: heavy (see top)

    rows = [json.loads(bytes(p)) for p in payloads]
    fields: list[pa.Field] = []
    arrays: list[pa.Array] = []
    for column_field in _fixed_schema():
        fields.append(column_field)
        name = column_field.name
        values = [row.get(name, False) if name == "shadow" else row[name] for row in rows]
        arrays.append(pa.array(values, column_field.type))
    for group in ("input", "output"):
        for key in dict.fromkeys(k for row in rows for k in row[group]):
            kind, array, as_json = _column([row[group].get(key) for row in rows])
            fields.append(pa.field(f"{group}.{key}", kind, metadata=JSON_TEXT if as_json else None))
            arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _parquet(table: pa.Table) -> bytes:
    import pyarrow.parquet as pq  # deferred: heavy (see top)

    names = [n for n in table.column_names if n.startswith((INPUT_PREFIX, OUTPUT_PREFIX))]
    table = table.select([*COLUMNS, *names]).replace_schema_metadata(FORMAT)
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def write_segments(
    store: Store,
    payloads: Sequence[bytes | memoryview],
    spool_id: str | None = None,
    upto_seq: int = 0,
) -> list[PredictionSegment]:
    """Store encoded records as Parquet blobs and index them (with the spool's progress)."""
    import pyarrow.compute as pc  # deferred: heavy (see top)

    if not payloads:
        segments: list[PredictionSegment] = []
        store.add_prediction_segments(segments, spool_id, upto_seq)
        return segments
    table = _typed_table(payloads)
    if table is None:
        table = _python_table(payloads)
    shadow = table.column("shadow")
    if shadow.null_count:  # records spooled before shadow rows existed are live
        table = table.set_column(
            table.schema.get_field_index("shadow"), "shadow", pc.fill_null(shadow, False)
        )
    stamps = table.column("timestamp_ms")
    hours = pc.multiply(pc.divide(stamps, HOUR_MS), HOUR_MS)
    table = table.append_column("hour_ms", hours)
    keys = table.group_by(["project", "deployment", "hour_ms"]).aggregate([])
    segments = []
    for project, deployment, hour in zip(
        keys.column("project").to_pylist(),
        keys.column("deployment").to_pylist(),
        keys.column("hour_ms").to_pylist(),
        strict=True,
    ):
        mask = pc.and_(
            pc.and_(pc.equal(table["project"], project), pc.equal(table["deployment"], deployment)),
            pc.equal(table["hour_ms"], hour),
        )
        part = table.filter(mask)
        low, high = pc.min_max(part["timestamp_ms"]).values()
        digest, size = store.artifacts.put_bytes(_parquet(part))
        segments.append(
            PredictionSegment(
                project, deployment, hour, digest, part.num_rows, low.as_py(), high.as_py(), size
            )
        )
    store.add_prediction_segments(segments, spool_id, upto_seq)
    return segments


def read_segment(
    store: Store, segment: PredictionSegment, start_ms: int | None, end_ms: int | None
) -> tuple[pd.DataFrame, list[str]]:
    """One segment's rows in ``[start_ms, end_ms)`` and all its column names."""
    import pandas as pd  # deferred: heavy (see top)
    import pyarrow.compute as pc  # deferred: heavy (see top)
    import pyarrow.parquet as pq  # deferred: heavy (see top)

    label = f"prediction log {segment.project}/{segment.deployment} hour {segment.hour_ms}"
    with store.artifacts.open_verified(segment.digest, label) as f:
        table = pq.read_table(f)
    stamps = pc.field("timestamp_ms")
    if start_ms is not None and segment.min_timestamp_ms < start_ms:
        table = table.filter(stamps >= start_ms)
    if end_ms is not None and segment.max_timestamp_ms >= end_ms:
        table = table.filter(stamps < end_ms)
    frame: pd.DataFrame = table.to_pandas()
    for column_field in table.schema:
        if column_field.metadata and column_field.metadata.get(b"loopwise.encoding") == b"json":
            values = table.column(column_field.name).to_pylist()
            frame[column_field.name] = pd.Series(
                [None if v is None else json.loads(v) for v in values],
                index=frame.index,
                dtype=object,
            )
    return frame, table.column_names
