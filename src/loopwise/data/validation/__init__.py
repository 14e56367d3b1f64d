"""Validation: expectations about a dataset, grouped in suites, checked on new data.

``expectations`` defines what a check is (``Expectation``, ``Finding``, ``RowCount``, ``Custom``);
``column_rules`` the built-in rules about one column (``Range``, ``NotNull``, …), which read the
column through ``column_types`` (its type family and arrays, computed once); ``suite`` holds
``Suite``, ``infer_suite`` and ``validate``; ``suite_yaml`` a suite's YAML form; and
``attached_suites`` the suites attached to dataset names, checked on every new version.
"""

from loopwise.data.validation.attached_suites import attach_suite, attached_suite, detach_suite
from loopwise.data.validation.suite import Suite, ValidationReport, infer_suite, validate

__all__ = [
    "Suite",
    "ValidationReport",
    "attach_suite",
    "attached_suite",
    "detach_suite",
    "infer_suite",
    "validate",
]
