"""Names and keys: project, dataset, model and deployment names; metric, param and tag keys."""

from __future__ import annotations

import re

from loopwise.store.checks.constraints import Pattern

__all__ = ["check_key", "check_name", "check_optional_name"]

NAME = Pattern(
    regex=re.compile(r"^[A-Za-z0-9_.\-]{1,200}$"),
    expected="a {what} name of 1-200 letters, digits, '_', '-' or '.'",
    hint="Choose a name like 'employment' or 'acs-ma'.",
    received=True,
)
KEY = Pattern(
    regex=re.compile(r"^[A-Za-z0-9_.\-/ :]{1,250}$"),
    expected="a {what} key of 1-250 letters, digits, spaces or '_-./:'",
    hint="Rename the key, e.g. 'val_auc' or 'train/loss'.",
    received=True,
)


def check_name(name: object, what: str) -> str:
    """Project, dataset and model names: short, and safe in URLs and file names."""
    return NAME.check(name, "name", what=what)


def check_optional_name(name: object, what: str) -> str | None:
    return None if name is None else check_name(name, what)


def check_key(key: object, what: str) -> str:
    """Metric, param and tag keys: letters, digits, spaces and ``_ - . / :``."""
    return KEY.check(key, "key", what=what)
