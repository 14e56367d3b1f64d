"""Versioned datasets: content-hashed snapshots with schema, row counts and lineage."""

from loopwise.data.datasets import (
    content_hash,
    list_datasets,
    load_dataset,
    log_dataset,
    parse_dataset_ref,
)
from loopwise.store import DatasetVersion

__all__ = [
    "DatasetVersion",
    "content_hash",
    "list_datasets",
    "load_dataset",
    "log_dataset",
    "parse_dataset_ref",
]
