"""Checks of monitoring input: outcomes joined to predictions, and alerts.

Each backend refuses bad input the same way, and the remote client refuses it before sending.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, cast

from loopwise.errors import InvalidArgumentError
from loopwise.store.checks.constraints import (
    INT64_MAX,
    Interval,
    Length,
    Options,
    refusal,
    shown_length,
)
from loopwise.store.checks.names import check_name
from loopwise.store.checks.values import check_storable_text, check_text, check_time_range
from loopwise.store.entities import Outcome, OutcomeValue

__all__ = [
    "ALERT_STATUSES",
    "MAX_ALERT_LIMIT",
    "MAX_DETAILS_CHARS",
    "MAX_FINGERPRINT_CHARS",
    "MAX_OUTCOME_CHARS",
    "MAX_REQUEST_ID_CHARS",
    "SEVERITIES",
    "CheckedOutcome",
    "check_alert",
    "check_alert_id",
    "check_alert_query",
    "check_outcome_value",
    "check_outcomes",
    "check_overwrite",
    "check_request_id",
    "check_request_ids",
    "dump_value",
]

MAX_REQUEST_ID_CHARS = 256  # as the prediction log's (``loopwise.store.predictions``)
MAX_OUTCOME_CHARS = 1000
"""The longest outcome value, as JSON text: labels and targets are short."""
MAX_FINGERPRINT_CHARS = 500
MAX_DETAILS_CHARS = 64_000
"""The largest ``details`` of an alert, as JSON text; put bigger evidence in an artifact."""
MAX_ALERT_LIMIT = 10_000
SEVERITIES = ("info", "warning", "critical")
ALERT_STATUSES = ("open", "resolved")
_INT_MAX = INT64_MAX
_EXACT_FLOAT_INT = 2**53  # integral floats below this are exactly ints

REQUEST_ID = Length(
    low=1,
    high=MAX_REQUEST_ID_CHARS,
    expected="{where} as a string of {low}-{high} characters (the prediction row's id in the "
    "prediction log)",
    show=lambda value: (f"{len(value)} characters" if isinstance(value, str) else repr(value))[
        :200
    ],
)
RULE = Length(
    low=1,
    high=200,
    expected="rule as the rule's name, {low}-{high} characters (e.g. 'drift')",
)
SEVERITY = Options(options=SEVERITIES, expected=f"severity one of {', '.join(SEVERITIES)}")
FINGERPRINT = Length(
    low=1,
    high=MAX_FINGERPRINT_CHARS,
    expected="fingerprint (the dedup key, e.g. 'drift/churn/AGEP') as a string of {low}-{high} "
    "characters",
    show=lambda value: repr(str(value)[:100]),
)
DETAILS = Length(
    high=MAX_DETAILS_CHARS,
    expected="details of at most {high} characters as JSON",
    hint="Keep the evidence short; store large reports as artifacts.",
    show=shown_length,
)
OVERWRITE = Options(options=(True, False), kind=bool, expected="overwrite as True or False")
ALERT_ID_TYPE = Interval(expected="alert_id as an integer (see `loopwise monitor alerts`)")
ALERT_ID = Interval(low=1, high=INT64_MAX, expected="alert_id >= {low}", show=str)
ALERT_STATUS = Options(options=ALERT_STATUSES, expected="status 'open', 'resolved' or None (both)")
ALERT_LIMIT = Interval(low=1, high=MAX_ALERT_LIMIT, expected="limit as an integer from 1 to {high}")


def check_request_id(request_id: object, where: str = "request_id") -> str:
    """A prediction row's id: a non-empty string of at most 256 characters."""
    if type(request_id) is str and 0 < len(request_id) <= MAX_REQUEST_ID_CHARS:
        if request_id.isascii() and "\x00" not in request_id:  # the common case, checked fast
            return request_id
        return check_storable_text(request_id, where)
    raise REQUEST_ID.refusal(request_id, "request_ids", where=where)


def check_request_ids(request_ids: object) -> list[str]:
    """A list of prediction row ids (duplicates allowed: they are looked up once)."""
    if isinstance(request_ids, str | bytes) or not isinstance(request_ids, Sequence):
        raise refusal(
            "request_ids as a list of strings",
            type(request_ids).__name__,
            "Wrap a single id in a list: [request_id].",
            parameter="request_ids",
        )
    return [check_request_id(r, f"request_ids[{i}]") for i, r in enumerate(request_ids)]


def check_outcome_value(value: object, request_id: str) -> OutcomeValue:
    """A label or target: a finite number, a string or a bool (NumPy scalars are unwrapped).

    Integral floats become ints, so that a label logged as ``1.0`` and again as ``1`` is one
    value (a duplicate), not a conflict.
    """
    kind = type(value)
    if kind is bool or (kind is int and -_INT_MAX - 1 <= value <= _INT_MAX):  # type: ignore[operator]
        return value  # type: ignore[return-value]
    if kind.__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        if not -_INT_MAX - 1 <= int(value) <= _INT_MAX:
            raise _bad_value(request_id, value, "an integer that fits 64 bits")
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise _bad_value(
                request_id,
                value,
                "a finite number (NaN means 'no outcome yet': leave such rows out, and log "
                "them when the outcome arrives)",
            )
        if number.is_integer() and abs(number) < _EXACT_FLOAT_INT:
            return int(number)
        return number
    if isinstance(value, str):
        check_storable_text(value, f"the outcome of {request_id!r}")
        if len(value) > MAX_OUTCOME_CHARS:
            raise _bad_value(request_id, f"{len(value)} characters", "at most 1000 characters")
        return value
    raise _bad_value(request_id, value, "a number, a string or a bool")


def _bad_value(request_id: str, value: object, expected: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"Outcome of {request_id!r}: expected {expected}, got {type(value).__name__} "
        f"{str(value)[:100]!r}.",
        parameter="labels",
        request_id=request_id,
    )


_encode_text = json.JSONEncoder(ensure_ascii=False).encode


def dump_value(value: OutcomeValue) -> str:
    """The stored form of a checked value: canonical JSON, so equal values have equal text."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return repr(value)  # as json.dumps writes a finite float
    return _encode_text(value)


def _timestamp(value: object, request_id: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentError(
            f"Outcome of {request_id!r}: expected timestamp_ms as an integer (milliseconds "
            f"since the epoch) or None for now, got {value!r}.",
            parameter="timestamp_ms",
            request_id=request_id,
        )
    if not 0 <= int(value) <= _INT_MAX:
        raise InvalidArgumentError(
            f"Outcome of {request_id!r}: expected timestamp_ms >= 0, got {value}.",
            parameter="timestamp_ms",
            request_id=request_id,
        )
    return int(value)


class CheckedOutcome(NamedTuple):
    request_id: str
    value: OutcomeValue
    text: str
    """``value`` as stored (``dump_value``)."""
    timestamp_ms: int | None


def _outcome(item: object, index: int) -> CheckedOutcome:
    if type(item) is tuple and len(item) in (2, 3):
        request_id, value = item[0], item[1]
        timestamp_ms = item[2] if len(item) == 3 else None
    elif isinstance(item, Outcome):
        request_id, value, timestamp_ms = item.request_id, item.value, item.timestamp_ms
    else:
        raise InvalidArgumentError(
            f"outcomes[{index}]: expected an Outcome(request_id, value, timestamp_ms=None) or a "
            f"tuple (request_id, value[, timestamp_ms]), got {type(item).__name__}.",
            parameter="outcomes",
        )
    rid = check_request_id(request_id, f"outcomes[{index}].request_id")
    checked = check_outcome_value(value, rid)
    fast = type(timestamp_ms) is int and 0 <= timestamp_ms <= _INT_MAX
    when = timestamp_ms if fast else None
    if when is None and timestamp_ms is not None:
        when = _timestamp(timestamp_ms, rid)
    return CheckedOutcome(rid, checked, dump_value(checked), when)


def check_outcomes(outcomes: object) -> list[CheckedOutcome]:
    """Outcomes to record, checked; an id given twice must carry the same value (kept once).

    Outcomes with ``timestamp_ms`` None keep None: the store fills in its own clock.
    """
    if isinstance(outcomes, str | bytes | Mapping) or not isinstance(outcomes, Sequence):
        raise refusal(
            "outcomes as a list of Outcome or (request_id, value) tuples",
            type(outcomes).__name__,
            parameter="outcomes",
        )
    unique: dict[str, CheckedOutcome] = {}
    for index, item in enumerate(outcomes):
        outcome = _outcome(item, index)
        seen = unique.setdefault(outcome.request_id, outcome)
        if seen.text != outcome.text:
            raise InvalidArgumentError(
                f"Request id {outcome.request_id!r} appears twice in this batch with different "
                f"outcomes ({seen.value!r} and {outcome.value!r}); expected one outcome per "
                "prediction row. Keep the right one and send the batch again.",
                parameter="outcomes",
                request_id=outcome.request_id,
            )
    return list(unique.values())


def check_overwrite(overwrite: object) -> bool:
    return cast(bool, OVERWRITE.check(overwrite, "overwrite"))


# -- alerts ----------------------------------------------------------------------------------------
def _check_details(details: object) -> dict[str, Any]:
    if details is None:
        return {}
    if not isinstance(details, Mapping):
        raise refusal(
            "details as a dict of JSON values", type(details).__name__, parameter="details"
        )
    try:
        text = json.dumps(dict(details), allow_nan=False, ensure_ascii=False)
    except ValueError as exc:
        raise InvalidArgumentError(
            f"Expected details as JSON values with finite numbers and no cycles, got: {exc}. "
            "Leave a NaN or infinite value out, or say why there is none in a string.",
            parameter="details",
        ) from None
    except TypeError as exc:
        raise InvalidArgumentError(
            f"Expected details as JSON values (numbers, strings, bools, None, lists and dicts "
            f"of them), got: {exc}. Convert it, e.g. with float(...) or str(...).",
            parameter="details",
        ) from None
    check_storable_text(DETAILS.check(text, "details"), "details")
    loaded: dict[str, Any] = json.loads(text)  # plain JSON types (tuples become lists)
    return loaded


def check_alert(
    *,
    deployment: object,
    rule: object,
    severity: object,
    fingerprint: object,
    message: object,
    details: object,
    window_start_ms: object,
    window_end_ms: object,
) -> dict[str, Any]:
    """The fields of an alert to raise, checked and normalised."""
    if deployment is not None:
        check_name(deployment, "deployment")
    check_storable_text(RULE.check(rule, "rule"), "rule")
    SEVERITY.check(severity, "severity")
    check_storable_text(FINGERPRINT.check(fingerprint, "fingerprint"), "fingerprint")
    if not isinstance(message, str) or not message.strip():
        raise refusal(
            "message as a non-empty sentence saying what happened",
            repr(message),
            parameter="message",
        )
    start, end = check_time_range(window_start_ms, window_end_ms)
    return {
        "deployment": deployment,
        "rule": rule,
        "severity": severity,
        "fingerprint": fingerprint,
        "message": check_text(message, "message"),
        "details": _check_details(details),
        "window_start_ms": start,
        "window_end_ms": end,
    }


def check_alert_id(alert_id: object) -> int:
    ALERT_ID_TYPE.check(alert_id, "alert_id")
    return ALERT_ID.check(alert_id, "alert_id")


def check_alert_query(
    deployment: object, status: object, since_ms: object, limit: object
) -> tuple[str | None, str | None, int | None, int]:
    """``list_alerts``' filters: a deployment, a status, a time and a row limit."""
    name = None if deployment is None else check_name(deployment, "deployment")
    if status is not None:
        ALERT_STATUS.check(status, "status")
    since, _ = check_time_range(since_ms, None)
    checked_limit = ALERT_LIMIT.check(limit, "limit")
    return name, None if status is None else str(status), since, checked_limit
