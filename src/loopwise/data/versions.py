"""Dataset versions in the store: refs like ``"acs-ma/3"`` resolved, their data loaded verified.

The read side of ``loopwise.data.datasets``, below profiles and validation so that both can
take a dataset ref; ``datasets`` adds the write side (``log_dataset``) on top of them.
"""

from __future__ import annotations

from typing import Literal, overload

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopwise.context import current
from loopwise.errors import InvalidArgumentError
from loopwise.store import DatasetVersion

__all__ = ["get_dataset", "list_datasets", "load_dataset", "parse_dataset_ref"]


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
