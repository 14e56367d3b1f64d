"""Checks of what runs log: metric values and steps, metric entries, params and tags."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from loopwise.store.checks.constraints import (
    INT64_MAX,
    Interval,
    Length,
    refusal,
    shown_length,
    shown_type_and_value,
)
from loopwise.store.checks.names import check_key
from loopwise.store.checks.values import MAX_VALUE_CHARS, check_storable_text

__all__ = [
    "MetricEntryFields",
    "check_metric_entry",
    "check_metric_value",
    "check_step",
    "check_string_map",
]

STEP = Interval(
    low=0,
    high=INT64_MAX,
    expected="a non-negative integer step for metric {key!r}",
    details=("key",),
    received=True,
)
VALUE = Length(
    high=MAX_VALUE_CHARS,
    expected="{what} {key!r} to be at most {high} characters",
    hint="Log long values as an artifact instead.",
    show=shown_length,
    details=("key",),
)


class MetricEntryFields(Protocol):
    """What a metric entry carries (``loopwise.store.MetricEntry``; the checks sit below the
    store's front door, so they name its fields rather than import it)."""

    @property
    def run_id(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def step(self) -> int: ...
    @property
    def timestamp_ms(self) -> int: ...


_Entry = TypeVar("_Entry", bound=MetricEntryFields)


def check_metric_value(key: str, value: object) -> float:
    """Any real number, NaN and infinity included; never a string or a bool."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        hint = "Convert it with float(...)." if isinstance(value, str) else "Log a single number."
        raise refusal(
            f"a number for metric {key!r}",
            shown_type_and_value(value),
            hint,
            parameter="value",
            key=key,
            received=repr(value)[:200],
        )
    return float(value)


def check_step(key: str, step: object) -> int:
    return STEP.check(step, "step", key=key)


def check_string_map(values: Mapping[str, Any], what: str) -> dict[str, str]:
    """Params and tags: keys checked, values turned to strings (as MLflow does)."""
    if not isinstance(values, Mapping):
        raise refusal(
            f"a mapping of {what} names to values",
            type(values).__name__,
            "Pass a dict, e.g. {'max_depth': 6}.",
            parameter=what,
        )
    result: dict[str, str] = {}
    for key, value in values.items():
        check_key(key, what)
        text = value if isinstance(value, str) else str(value)
        VALUE.check(text, what, what=what, key=key)
        result[key] = check_storable_text(text, f"{what} {key!r}")
    return result


def check_metric_entry(entry: _Entry) -> _Entry:
    """One metric value, checked and normalised (key, number, step, integer timestamp)."""
    key = check_key(entry.key, "metric")
    make: Callable[..., _Entry] = type(entry)
    return make(
        entry.run_id,
        key,
        check_metric_value(key, entry.value),
        check_step(key, entry.step),
        int(entry.timestamp_ms),
    )
