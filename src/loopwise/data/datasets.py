"""Dataset versions: content-hashed Parquet snapshots that load back exactly as logged."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal, overload

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopwise.context import current
from loopwise.data.attached_suites import check_attached_suite
from loopwise.data.chunks import check_column_names
from loopwise.data.profiles import save_profile, table_profile
from loopwise.errors import InvalidArgumentError
from loopwise.store import DatasetVersion, Store
from loopwise.store.validate import check_name, check_optional_name, check_text

__all__ = [
    "content_hash",
    "get_dataset",
    "list_datasets",
    "load_dataset",
    "log_dataset",
    "parse_dataset_ref",
]

READERS = {
    ".parquet": "Parquet",
    ".pq": "Parquet",
    ".csv": "CSV",
    ".feather": "Arrow",
    ".arrow": "Arrow",
}


def _to_table(data: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pd.DataFrame):
        check_column_names(data)
        return pa.Table.from_pandas(data)
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        kind = READERS.get(path.suffix.lower())
        if not path.is_file() or kind is None:
            problem = "does not exist" if not path.exists() else f"has suffix {path.suffix!r}"
            raise InvalidArgumentError(
                f"Expected a DataFrame, an Arrow table, or a path to a {', '.join(sorted(READERS))} "
                f"file; got {str(path)!r}, which {problem}.",
                parameter="data",
            )
        if kind == "Parquet":
            return pq.read_table(path)
        if kind == "Arrow":
            import pyarrow.feather as feather

            return feather.read_table(path)
        return pa.Table.from_pandas(pd.read_csv(path))
    raise InvalidArgumentError(
        f"Expected a pandas DataFrame, a pyarrow Table or a file path, got {type(data).__name__}.",
        parameter="data",
    )


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
    table = _to_table(data)
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


def parse_dataset_ref(ref: str) -> tuple[str, int | None]:
    """``"acs-ma"`` (latest) or ``"acs-ma/3"`` to ``(name, version)``."""
    if not isinstance(ref, str) or not ref:
        raise InvalidArgumentError(
            f"Expected a dataset reference like 'acs-ma' or 'acs-ma/3', got {ref!r}.",
            parameter="ref",
        )
    name, _, version = ref.partition("/")
    if version and not version.isdigit():
        raise InvalidArgumentError(
            f"Expected a version number after '/', got {ref!r}. Use e.g. '{name}/1'.",
            parameter="ref",
        )
    return name, int(version) if version else None


def get_dataset(ref: str | DatasetVersion) -> DatasetVersion:
    """The version ``ref`` names (``"acs-ma"``: the latest, ``"acs-ma/3"``) in the current
    project; a ``DatasetVersion`` as it is."""
    if isinstance(ref, DatasetVersion):
        return ref
    ctx = current()
    name, number = parse_dataset_ref(ref)
    return ctx.store.get_dataset_version(ctx.project, name, number)


@overload
def load_dataset(
    ref: str | DatasetVersion, *, format: Literal["pandas"] = "pandas"
) -> pd.DataFrame: ...
@overload
def load_dataset(ref: str | DatasetVersion, *, format: Literal["arrow"]) -> pa.Table: ...
def load_dataset(ref: str | DatasetVersion, *, format: str = "pandas") -> pd.DataFrame | pa.Table:
    """The data of a version, verified against its digest, as logged (dtypes included)."""
    if format not in ("pandas", "arrow"):
        raise InvalidArgumentError(
            f"Expected format 'pandas' or 'arrow', got {format!r}.", parameter="format"
        )
    ctx = current()
    version = get_dataset(ref)
    with ctx.store.artifacts.open_verified(
        version.artifact_digest, name=f"dataset {version.ref}"
    ) as f:
        table = pq.read_table(f)
    return table if format == "arrow" else table.to_pandas()


def list_datasets(name: str | None = None) -> list[DatasetVersion]:
    ctx = current()
    return ctx.store.list_dataset_versions(ctx.project, name)
