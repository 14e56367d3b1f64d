"""Versioned datasets: content-hashed snapshots with schema, row counts and lineage.

Datasets live at the top: ``datasets`` (log a version, profiled and checked on the way in),
``versions`` (refs resolved, versions read back), ``tables`` and ``chunks`` (any tabular input as
one Arrow table or as bounded batches) and ``kinds`` (the one vocabulary of column kinds). Three
sub-packages build on them: ``profiles`` (per-column sketches), ``validation`` (expectations,
suites, suites attached to datasets) and ``drift`` (two-sample tests between datasets).
"""

from loopwise.data.datasets import (
    content_hash,
    get_dataset,
    list_datasets,
    load_dataset,
    log_dataset,
    parse_dataset_ref,
)
from loopwise.data.profiles import ColumnProfile, Profile, dataset_profile, profile
from loopwise.data.validation import (
    Suite,
    ValidationReport,
    attach_suite,
    attached_suite,
    detach_suite,
    infer_suite,
    validate,
)
from loopwise.data.validation.column_rules import (
    AllowedCategories,
    ColumnPresent,
    ColumnType,
    Finite,
    MeanBetween,
    NotNull,
    Range,
    Unique,
)
from loopwise.data.validation.expectations import Custom, Finding, RowCount
from loopwise.store import DatasetVersion

__all__ = [
    "AllowedCategories",
    "ColumnPresent",
    "ColumnProfile",
    "ColumnType",
    "Custom",
    "DatasetVersion",
    "Finding",
    "Finite",
    "MeanBetween",
    "NotNull",
    "Profile",
    "Range",
    "RowCount",
    "Suite",
    "Unique",
    "ValidationReport",
    "attach_suite",
    "attached_suite",
    "content_hash",
    "dataset_profile",
    "detach_suite",
    "get_dataset",
    "infer_suite",
    "list_datasets",
    "load_dataset",
    "log_dataset",
    "parse_dataset_ref",
    "profile",
    "validate",
]
