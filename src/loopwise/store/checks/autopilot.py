"""Checks of the autopilot's input: policies and the decisions the controller records.

A decision's ``state`` and ``evidence`` are free-form JSON written by the controller and read back
by it: plain JSON types only, bounded in size and depth, every refusal naming the key.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from loopwise.errors import InvalidArgumentError
from loopwise.store.checks.constraints import Length, Pattern, refusal, shown_length
from loopwise.store.checks.values import (
    MAX_JSON_DEPTH,
    check_epoch_ms,
    check_int,
    check_storable_text,
    check_yaml_text,
)

__all__ = [
    "MAX_DECISION_JSON_BYTES",
    "MAX_POLICY_CHARS",
    "MAX_POLICY_VALUES",
    "MAX_SUMMARY_CHARS",
    "CheckedDecision",
    "check_autopilot_decision",
    "check_decision_page",
    "check_expected_policy_revision",
    "check_json_object",
    "check_policy_text",
]

MAX_POLICY_CHARS = 1_000_000
"""The longest autopilot policy (YAML text): far beyond any real one."""
MAX_POLICY_VALUES = 10_000
"""The most YAML values a policy may hold, aliases expanded: a real one has a few dozen."""
MAX_SUMMARY_CHARS = 2000
MAX_DECISION_JSON_BYTES = 1_000_000
"""The most a decision's ``state`` or ``evidence`` may take as compact UTF-8 JSON."""

DECISION_KIND = Pattern(
    regex=re.compile(r"^[a-z][a-z_-]{0,39}$"),
    expected="the decision kind as 1-40 lowercase letters, '_' or '-', starting with a letter",
    hint="Use a word such as 'retrain', 'canary' or 'rollback'.",
    received=True,
)
SUMMARY = Length(
    high=MAX_SUMMARY_CHARS,
    expected="a summary of at most {high} characters",
    hint="Put the details in the evidence.",
    show=shown_length,
)


def check_policy_text(text: object) -> str:
    """An autopilot policy as stored: non-blank text of bounded size (its YAML is the
    autopilot's to check)."""
    checked = check_yaml_text(
        text,
        ("the autopilot policy", "a policy"),
        MAX_POLICY_CHARS,
        "text",
        max_values=MAX_POLICY_VALUES,
        build="Write the policy in a file and set it with: loopwise autopilot set-policy "
        "DEPLOYMENT FILE.",
        shorten="A policy names its pipeline and thresholds; keep data out of it.",
    )
    return _json_text(checked, "text", "the policy text")


def check_expected_policy_revision(revision: object) -> int | None:
    """None, or the policy revision a change expects to replace (0: none set yet)."""
    return None if revision is None else check_int(revision, "expected_revision")


def _json_refused(parameter: str, where: str, problem: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"Expected {parameter} to be a JSON object, but {where} {problem}",
        parameter=parameter,
        key=where,
    )


def _json_text(text: str, parameter: str, what: str) -> str:
    try:
        return check_storable_text(text, what)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(exc.message, parameter=parameter) from None


def _plain_json(value: object, parameter: str, where: str, depth: int) -> Any:
    """``value`` as plain JSON types (dict, list, str, int, float, bool, None), or a refusal
    that names the key."""
    if depth > MAX_JSON_DEPTH:
        raise _json_refused(
            parameter,
            where,
            f"nests deeper than {MAX_JSON_DEPTH} levels. Flatten it, or keep the data in a run's "
            "artifact and name it here.",
        )
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _json_text(str(value), parameter, f"the text at {where}")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _json_refused(
                parameter,
                where,
                f"is {value!r}, which JSON cannot carry. Record None, or the value as a string.",
            )
        return float(value)
    if isinstance(value, Mapping):
        plain: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _json_refused(
                    parameter,
                    f"{where}[{key!r}]",
                    f"has a key of type {type(key).__name__}: JSON object keys are strings. Convert it "
                    "with str(...).",
                )
            _json_text(key, parameter, f"the key {key!r} in {where}")
            plain[str(key)] = _plain_json(item, parameter, f"{where}[{key!r}]", depth + 1)
        return plain
    if isinstance(value, (list, tuple)):
        return [
            _plain_json(item, parameter, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)
        ]
    hint = (
        " Convert it with int(...) or float(...)."
        if isinstance(value, numbers.Number)
        else " Convert it to a string, number, list or dict."
    )
    raise _json_refused(
        parameter, where, f"is a {type(value).__name__} ({repr(value)[:80]}), not JSON.{hint}"
    )


def check_json_object(value: object, parameter: str) -> tuple[dict[str, Any], str]:
    """A JSON object given as a mapping: ``(plain dict, compact JSON text)``. Tuples become
    lists; NaN, infinities, non-string keys and other types are refused, naming the key."""
    if not isinstance(value, Mapping):
        raise refusal(
            f"{parameter} as a JSON object (a dict with string keys)",
            type(value).__name__,
            "Pass a dict, e.g. {'step': 'canary', 'share': 5}.",
            parameter=parameter,
        )
    plain: dict[str, Any] = _plain_json(value, parameter, parameter, 1)
    text = json.dumps(plain, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    size = len(text.encode("utf-8"))
    if size > MAX_DECISION_JSON_BYTES:
        raise refusal(
            f"{parameter} to take at most {MAX_DECISION_JSON_BYTES} bytes as JSON",
            str(size),
            "Keep bulky data (predictions, per-row scores) in a run's artifacts and name the "
            "run here.",
            parameter=parameter,
        )
    return plain, text


class CheckedDecision(NamedTuple):
    """An autopilot decision's fields, checked; ``state`` and ``evidence`` also as JSON text."""

    seq: int
    kind: str
    summary: str
    state: dict[str, Any]
    state_json: str
    evidence: dict[str, Any]
    evidence_json: str
    at_ms: int


def check_autopilot_decision(
    seq: object, kind: object, summary: object, state: object, evidence: object, at_ms: object
) -> CheckedDecision:
    """A decision to record: its number, a kind such as ``retrain``, one sentence, two JSON
    objects and the controller's clock."""
    number = check_int(seq, "seq", low=1)
    checked_kind = DECISION_KIND.check(kind, "kind")
    if not isinstance(summary, str) or not summary.strip():
        got = "blank text" if isinstance(summary, str) else type(summary).__name__
        raise refusal(
            "the decision's summary as one sentence of text",
            got,
            "Say what was decided and why, e.g. 'Canary at 5%: the candidate beat production "
            "by 0.03'.",
            parameter="summary",
        )
    SUMMARY.check(summary, "summary")
    try:
        check_storable_text(summary, "the summary")
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(exc.message, parameter="summary") from None
    plain_state, state_json = check_json_object(state, "state")
    plain_evidence, evidence_json = check_json_object(evidence, "evidence")
    clock = check_epoch_ms(at_ms, "at_ms")
    return CheckedDecision(
        number, checked_kind, summary, plain_state, state_json, plain_evidence, evidence_json, clock
    )


def check_decision_page(after_seq: object, limit: object) -> tuple[int, int | None]:
    """Which decisions to read: those after ``after_seq`` (>= 0), at most ``limit`` (>= 1, or
    None for all)."""
    after = check_int(after_seq, "after_seq")
    return after, None if limit is None else check_int(limit, "limit", low=1)
