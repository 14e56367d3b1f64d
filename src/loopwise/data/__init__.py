"""Versioned datasets: content-hashed snapshots with schema, row counts and lineage."""

from loopwise.data.attached_suites import attach_suite, attached_suite, detach_suite
from loopwise.data.column_rules import (
    AllowedCategories,
    ColumnPresent,
    ColumnType,
    Finite,
    MeanBetween,
    NotNull,
    Range,
    Unique,
)
from loopwise.data.datasets import (
    content_hash,
    list_datasets,
    load_dataset,
    log_dataset,
    parse_dataset_ref,
)
from loopwise.data.expectations import Custom, Finding, RowCount
from loopwise.data.profiles import ColumnProfile, Profile, dataset_profile, profile
from loopwise.data.validation import Suite, ValidationReport, infer_suite, validate
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
    "infer_suite",
    "list_datasets",
    "load_dataset",
    "log_dataset",
    "parse_dataset_ref",
    "profile",
    "validate",
]
