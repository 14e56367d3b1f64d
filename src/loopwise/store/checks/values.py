"""Checks of values every area takes: integers, free text, time ranges, spool positions, YAML.

The area modules (names, runs, catalog, …) build on these; nothing here knows an entity.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from loopwise.errors import InvalidArgumentError
from loopwise.store.checks.constraints import (
    INT64_MAX,
    Interval,
    Length,
    Pattern,
    refusal,
    shown_characters,
    shown_type_and_value,
)

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_VALUE_CHARS",
    "MAX_YAML_DEPTH",
    "check_epoch_ms",
    "check_int",
    "check_spool_id",
    "check_storable_text",
    "check_text",
    "check_time_range",
    "check_upto_seq",
    "check_yaml_text",
]

MAX_VALUE_CHARS = 8000
MAX_JSON_DEPTH = 64
"""How deeply stored free-form JSON may nest (decisions, audit records, the REST API's JSON)."""
MAX_YAML_DEPTH = 64
"""How deeply a suite or a policy may nest (aliases expanded)."""

INTEGER = Interval(
    expected="{parameter} as an integer{unit}", show=shown_type_and_value, received=True
)
INT64 = Interval(
    low=0, high=INT64_MAX, expected="{parameter} between {low} and {high}", received=True
)
TEXT = Length(
    high=MAX_VALUE_CHARS,
    expected="the {what} to be a string of at most {high} characters",
    show=shown_characters,
)
SPOOL_ID = Pattern(
    regex=re.compile(r"^[A-Za-z0-9_.\-]{1,64}$"),
    expected="a spool id of 1-64 letters, digits, '_', '-' or '.'",
)


def check_int(value: object, parameter: str, low: int = 0, unit: str = "") -> int:
    """An integer (never a bool) from ``low`` to the largest 64-bit integer."""
    INTEGER.check(value, parameter, unit=unit)
    return (INT64 if low == INT64.low else replace(INT64, low=low)).check(value, parameter)


def check_epoch_ms(value: object, parameter: str) -> int:
    """A time in milliseconds since the epoch."""
    return check_int(value, parameter, unit=" (milliseconds since the epoch)")


def check_upto_seq(upto_seq: object) -> int:
    """How far a spool has reached: an integer >= 0."""
    return check_int(upto_seq, "upto_seq")


def check_spool_id(spool_id: object) -> str:
    """A spool's id (``<pid>-<hex>``), as sent by a client replaying its spool."""
    return SPOOL_ID.check(spool_id, "spool_id")


def check_text(text: object, what: str, max_chars: int = MAX_VALUE_CHARS) -> str | None:
    """Free text such as a description: a string of bounded length, or None."""
    if text is None:
        return None
    rule = TEXT if max_chars == TEXT.high else replace(TEXT, high=max_chars)
    return check_storable_text(rule.check(text, what, what=what), f"the {what}")


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


def check_time_range(start_ms: object, end_ms: object) -> tuple[int | None, int | None]:
    """``[start_ms, end_ms)`` with either end open (None); start must not be after end."""
    start = None if start_ms is None else check_epoch_ms(start_ms, "start_ms")
    end = None if end_ms is None else check_epoch_ms(end_ms, "end_ms")
    if start is not None and end is not None and start > end:
        raise refusal(
            "start_ms <= end_ms",
            f"start_ms={start} after end_ms={end}",
            "The range is [start_ms, end_ms): swap them.",
            parameter="end_ms",
        )
    return start, end


def check_yaml_text(
    text: object,
    names: tuple[str, str],
    limit: int,
    parameter: str,
    *,
    max_values: int,
    build: str,
    shorten: str,
) -> str:
    """Non-blank YAML text of at most ``limit`` characters and ``max_values`` values once its
    aliases are expanded; ``names`` say what it is (``("the suite", "a suite")``), ``build``
    how to make one, ``shorten`` how to trim one. Text YAML cannot parse passes: its reader
    says what is wrong with it."""
    if not isinstance(text, str) or not text.strip():
        got = "blank text" if isinstance(text, str) else type(text).__name__
        raise refusal(f"{names[0]} as non-empty YAML text", got, build, parameter=parameter)
    if len(text) > limit:
        raise refusal(
            f"{names[1]} of at most {limit} characters",
            str(len(text)),
            shorten,
            parameter=parameter,
        )
    problem = _yaml_expansion(text, max_values)
    if problem:
        raise refusal(
            f"{names[1]} of at most {max_values} YAML values nested at most {MAX_YAML_DEPTH} "
            "deep once its aliases (*name) are expanded",
            f"one that {problem}",
            "Write the values out instead of repeating aliases.",
            parameter=parameter,
        )
    return text


def _yaml_expansion(text: str, max_values: int) -> str:
    """What makes ``text`` too big once its aliases are expanded (empty: nothing).

    A few hundred characters of nested aliases (a "billion laughs") stand for billions of
    values: anything that walks or prints the loaded document would never finish. The
    document is composed (aliases stay shared nodes, so this is linear in the text) and the
    expanded size and depth of each node computed once."""
    import yaml  # deferred: PyYAML (~25 ms) is needed only for suites and policies

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)  # pure Python: no C stack to overflow
    except yaml.YAMLError:
        return ""
    except RecursionError:
        return f"nests deeper than {MAX_YAML_DEPTH} levels"
    if root is None:
        return ""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        children = _yaml_children(node)
        key = id(node)
        if finished:
            open_nodes.discard(key)
            size[key] = min(1 + sum(size[id(c)] for c in children), max_values + 1)
            height[key] = 1 + max((height[id(c)] for c in children), default=0)
            if size[key] > max_values:
                return f"expands to more than {max_values} values"
            if height[key] > MAX_YAML_DEPTH:
                return f"nests deeper than {MAX_YAML_DEPTH} levels"
            continue
        if key in size:
            continue
        if key in open_nodes:
            return "has an alias inside the value it names (a loop)"
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)
    return ""


def _yaml_children(node: Any) -> list[Any]:
    import yaml  # deferred: PyYAML (~25 ms) is needed only for suites and policies

    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
