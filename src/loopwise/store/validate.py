"""Argument checks shared by every store backend, so each refuses bad input the same way."""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from loopwise.errors import InvalidArgumentError

if TYPE_CHECKING:
    from loopwise.store.base import MetricEntry

__all__ = [
    "INVALID_TOKEN",
    "check_alias",
    "check_key",
    "check_metric_entry",
    "check_metric_value",
    "check_name",
    "check_optional_name",
    "check_spool_id",
    "check_step",
    "check_storable_text",
    "check_string_map",
    "check_text",
]

INVALID_TOKEN = (
    "The API token is not valid: it is unknown, malformed or revoked. Check that the whole "
    "secret (lw_…) was copied, or ask an admin for a new one: loopwise token create."
)
"""The one answer to every bad secret, so that none tells more than another."""

_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")
_KEY = re.compile(r"^[A-Za-z0-9_.\-/ :]{1,250}$")
MAX_VALUE_CHARS = 8000


def check_name(name: object, what: str) -> str:
    """Project, dataset and model names: short, and safe in URLs and file names."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgumentError(
            f"Expected a {what} name of 1-200 letters, digits, '_', '-' or '.', got {name!r}. "
            "Choose a name like 'employment' or 'acs-ma'.",
            parameter="name",
            received=repr(name)[:200],
        )
    return name


def check_key(key: object, what: str) -> str:
    """Metric, param and tag keys: letters, digits, spaces and ``_ - . / :``."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise InvalidArgumentError(
            f"Expected a {what} key of 1-250 letters, digits, spaces or '_-./:', got {key!r}. "
            "Rename the key, e.g. 'val_auc' or 'train/loss'.",
            parameter="key",
            received=repr(key)[:200],
        )
    return key


def check_metric_value(key: str, value: object) -> float:
    """Any real number, NaN and infinity included; never a string or a bool."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        hint = "Convert it with float(...)." if isinstance(value, str) else "Log a single number."
        raise InvalidArgumentError(
            f"Expected a number for metric {key!r}, got {type(value).__name__} {value!r}. {hint}",
            parameter="value",
            key=key,
            received=repr(value)[:200],
        )
    return float(value)


def check_step(key: str, step: object) -> int:
    if (
        isinstance(step, bool)
        or not isinstance(step, numbers.Integral)
        or not 0 <= int(step) < 2**63
    ):
        raise InvalidArgumentError(
            f"Expected a non-negative integer step for metric {key!r}, got {step!r}.",
            parameter="step",
            key=key,
            received=repr(step)[:200],
        )
    return int(step)


def check_string_map(values: Mapping[str, Any], what: str) -> dict[str, str]:
    """Params and tags: keys checked, values turned to strings (as MLflow does)."""
    if not isinstance(values, Mapping):
        raise InvalidArgumentError(
            f"Expected a mapping of {what} names to values, got {type(values).__name__}. "
            f"Pass a dict, e.g. {{'max_depth': 6}}.",
            parameter=what,
        )
    result: dict[str, str] = {}
    for key, value in values.items():
        check_key(key, what)
        text = value if isinstance(value, str) else str(value)
        if len(text) > MAX_VALUE_CHARS:
            raise InvalidArgumentError(
                f"Expected {what} {key!r} to be at most {MAX_VALUE_CHARS} characters, got {len(text)}. "
                "Log long values as an artifact instead.",
                parameter=what,
                key=key,
            )
        result[key] = check_storable_text(text, f"{what} {key!r}")
    return result


def check_optional_name(name: object, what: str) -> str | None:
    return None if name is None else check_name(name, what)


def check_text(text: object, what: str, max_chars: int = MAX_VALUE_CHARS) -> str | None:
    """Free text such as a description: a string of bounded length, or None."""
    if text is None:
        return None
    if not isinstance(text, str) or len(text) > max_chars:
        got = f"{len(text)} characters" if isinstance(text, str) else type(text).__name__
        raise InvalidArgumentError(
            f"Expected the {what} to be a string of at most {max_chars} characters, got {got}.",
            parameter=what,
        )
    return check_storable_text(text, f"the {what}")


def check_storable_text(text: str, what: str = "text") -> str:
    """Refuse what some backend cannot store: NUL (PostgreSQL) and lone surrogates (not UTF-8)."""
    if "\x00" in text:
        raise InvalidArgumentError(
            f"Expected {what} without NUL characters ('\\x00'), which PostgreSQL cannot store. "
            "Remove them.",
            parameter=what,
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(
            f"Expected {what} to be valid Unicode, got a lone surrogate such as '\\ud800'. "
            "Decode the text from its bytes with the right encoding.",
            parameter=what,
        ) from None
    return text


_SPOOL_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def check_spool_id(spool_id: object) -> str:
    """A metric spool's id (``<pid>-<hex>``), as sent by a client replaying its spool."""
    if not isinstance(spool_id, str) or not _SPOOL_ID.match(spool_id):
        raise InvalidArgumentError(
            f"Expected a spool id of 1-64 letters, digits, '_', '-' or '.', got {spool_id!r}.",
            parameter="spool_id",
        )
    return spool_id


def check_metric_entry(entry: MetricEntry) -> MetricEntry:
    """One metric value, checked and normalised (key, number, step, integer timestamp)."""
    key = check_key(entry.key, "metric")
    return type(entry)(
        entry.run_id,
        key,
        check_metric_value(key, entry.value),
        check_step(key, entry.step),
        int(entry.timestamp_ms),
    )


def check_alias(alias: object) -> str:
    """Alias names: like other names, but never a number (numbers name versions)."""
    name = check_name(alias, "alias")
    if name.isdigit():
        raise InvalidArgumentError(
            f"Expected an alias that is not a number, got {alias!r}: numbers name versions. "
            "Choose a word such as 'production' or 'candidate'.",
            parameter="alias",
        )
    return name
