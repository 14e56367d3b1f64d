"""Suites attached to dataset names: every new version of the dataset is checked with its suite,
and the attachment says whether a violation warns or refuses the version.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

from loopwise.context import current
from loopwise.data.validation.suite import Suite, ValidationReport
from loopwise.errors import InvalidArgumentError, ValidationFailedError, ValidationWarning
from loopwise.store.checks import check_name

__all__ = ["attach_suite", "attached_suite", "check_attached_suite", "detach_suite"]

OnFailure = Literal["warn", "fail"]


def attach_suite(dataset: str, suite: Suite, *, on_failure: OnFailure = "warn") -> None:
    """Check every new version of ``dataset`` with ``suite``; replaces a suite attached before.

    ``on_failure="warn"`` logs the version and warns (:class:`~loopwise.errors.ValidationWarning`);
    ``"fail"`` refuses it (:class:`~loopwise.errors.ValidationFailedError`). The dataset need not
    have versions yet. Custom (Python) checks cannot be stored: attach a suite without them.
    """
    check_name(dataset, "dataset")
    if not isinstance(suite, Suite):
        raise InvalidArgumentError(
            f"Expected a Suite, got {type(suite).__name__}. Build one with infer_suite(data) or "
            "Suite.from_yaml(text).",
            parameter="suite",
        )
    if on_failure not in ("warn", "fail"):
        raise InvalidArgumentError(
            f"Expected on_failure 'warn' (log the version and warn) or 'fail' (refuse the "
            f"version), got {on_failure!r}.",
            parameter="on_failure",
        )
    ctx = current()
    ctx.store.set_dataset_suite(ctx.project, dataset, suite.to_yaml(), on_failure)


def attached_suite(dataset: str) -> tuple[Suite, OnFailure] | None:
    """The suite attached to ``dataset`` and its on_failure setting, or None."""
    check_name(dataset, "dataset")
    ctx = current()
    stored = ctx.store.get_dataset_suite(ctx.project, dataset)
    if stored is None:
        return None
    return Suite.from_yaml(stored.suite), stored.on_failure


def detach_suite(dataset: str) -> None:
    """Stop checking new versions of ``dataset``; NotFoundError if no suite is attached."""
    check_name(dataset, "dataset")
    ctx = current()
    ctx.store.delete_dataset_suite(ctx.project, dataset)


def check_attached_suite(name: str, data: Any) -> ValidationReport | None:
    """Validate ``data`` with the suite attached to dataset ``name`` (None when there is none).

    On error findings: with ``on_failure="fail"`` raise :class:`ValidationFailedError` (its
    details carry the findings); with ``"warn"`` emit a :class:`ValidationWarning` and return
    the report. Warning-severity findings alone only warn. ``log_dataset`` calls this.
    """
    attached = attached_suite(name)
    if attached is None:
        return None
    suite, on_failure = attached
    report = suite.validate(data)
    problems = [f for f in report.findings if f.severity != "info"]
    if not problems:
        return report
    if on_failure == "fail" and not report.ok:
        raise ValidationFailedError(
            f"Dataset {name!r} broke its validation suite in {len(report.errors)} way(s), and "
            f"the suite is attached with on_failure='fail', so the data was refused:\n"
            f"{report.summary()}\nFix the data, or edit the suite (loopwise data suite show "
            f"{name}) and attach it again.",
            parameter="data",
            dataset=name,
            findings=[f.to_dict() for f in report.findings],
        )
    warnings.warn(
        f"Dataset {name!r} broke its validation suite in {len(problems)} way(s) "
        f"(on_failure={on_failure!r}):\n{report.summary()}",
        ValidationWarning,
        stacklevel=3,  # the caller of log_dataset
    )
    return report
