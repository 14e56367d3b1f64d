"""Dataset versions: content-hashed Parquet snapshots that load back exactly as logged.

The top of ``loopwise.data``'s dataset layer: ``log_dataset`` profiles new data and checks it
with its attached suite; refs are resolved and versions read in ``loopwise.data.versions``
(re-exported here), which profiles and validation use too.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from loopwise.context import current
from loopwise.data.profiles import save_profile, table_profile
from loopwise.data.tables import READERS as READERS
from loopwise.data.tables import read_table
from loopwise.data.validation.attached_suites import check_attached_suite
from loopwise.data.versions import get_dataset, list_datasets, load_dataset, parse_dataset_ref
from loopwise.store import DatasetVersion, Store
from loopwise.store.checks import check_name, check_optional_name, check_text

__all__ = [
    "content_hash",
    "get_dataset",
    "list_datasets",
    "load_dataset",
    "log_dataset",
    "parse_dataset_ref",
]


def _canonical_type(dtype: pa.DataType) -> pa.DataType:
    """Large and small string/binary types hold the same data; Parquet round trips switch them."""
    if pa.types.is_large_string(dtype):
        return pa.string()
    if pa.types.is_large_binary(dtype):
        return pa.binary()
    if pa.types.is_dictionary(dtype):
        return pa.dictionary(dtype.index_type, _canonical_type(dtype.value_type), dtype.ordered)
    return dtype


def content_hash(table: pa.Table) -> str:
    """A hash of the data and its declared types, independent of chunking and file encoding."""
    canonical_schema = pa.schema(
        [field.with_type(_canonical_type(field.type)) for field in table.schema],
        metadata=table.schema.metadata,
    )
    if canonical_schema != table.schema:
        table = table.cast(canonical_schema)
    digest = hashlib.sha256()
    metadata = dict(table.schema.metadata or {})
    pandas_meta = json.loads(metadata.pop(b"pandas", b"{}"))
    for volatile in ("pandas_version", "creator"):
        pandas_meta.pop(volatile, None)
    digest.update(table.schema.remove_metadata().to_string().encode())
    digest.update(json.dumps(pandas_meta, sort_keys=True).encode())
    digest.update(
        json.dumps({k.decode(): v.decode() for k, v in sorted(metadata.items())}).encode()
    )
    # Hash where the nulls are and the valid values, each compacted into fresh buffers: the
    # bytes under a null slot are unspecified and differ between producers.
    for column in table.replace_schema_metadata(None).combine_chunks().columns:
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        for part in (array.is_null(), array.drop_null()):
            sink = pa.BufferOutputStream()
            batch = pa.record_batch([part], names=["v"])
            with pa.ipc.new_stream(sink, batch.schema) as writer:
                writer.write_batch(batch)
            digest.update(sink.getvalue().to_pybytes())
    return "sha256:" + digest.hexdigest()


def log_dataset(
    data: Any,
    name: str,
    *,
    split: str | None = None,
    description: str | None = None,
) -> DatasetVersion:
    """Version ``data`` (DataFrame, Arrow table or file) under ``name`` in the current project.

    Logging identical data again returns the existing version and stores nothing new. Each
    new version keeps a profile of its columns (see ``loopwise.data.profiles``). When a
    validation suite is attached to ``name`` (``attach_suite``), new data is checked first: a
    violation warns, or with ``on_failure="fail"`` raises ``ValidationFailedError`` and
    nothing is stored.
    """
    check_name(name, "dataset")
    check_optional_name(split, "split")
    check_text(description, "description")
    ctx = current()
    table = read_table(data)
    digest = content_hash(table)
    for existing in ctx.store.list_dataset_versions(ctx.project, name):
        if existing.content_hash != digest:
            continue
        if ctx.store.artifacts.exists(existing.artifact_digest):
            return existing
        # The version's file was deleted: the same data writes the same file back.
        if _write_snapshot(ctx.store, table) == existing.artifact_digest:
            return existing
    check_attached_suite(name, table)
    artifact_digest = _write_snapshot(ctx.store, table)
    summary = table_profile(table)
    profile_digest = None if summary is None else save_profile(ctx.store, summary)
    version, _ = ctx.store.create_dataset_version(
        ctx.project,
        name,
        content_hash=digest,
        artifact_digest=artifact_digest,
        num_rows=table.num_rows,
        schema={field.name: str(field.type) for field in table.schema},
        split=split,
        description=description,
        profile_digest=profile_digest,
    )
    return version


def _write_snapshot(store: Store, table: pa.Table) -> str:
    """Store ``table`` as the Parquet file a version points to; returns its digest."""
    with tempfile.TemporaryDirectory(prefix="loopwise-") as tmp:
        path = Path(tmp) / "data.parquet"
        pq.write_table(table, path, compression="zstd")
        digest, _ = store.artifacts.put_file(path)
    return digest
