"""The run search language, parsed once for every backend.

A filter is clauses joined by ``and``::

    metrics.auc > 0.85 and params.model = 'hgb' and tags.team != 'x' and status = 'FINISHED'

Keys with unusual characters are quoted with backticks (``metrics.`val auc` > 0.8``). Order
terms are ``metrics.auc desc``, ``params.model``, ``start_time asc``, ``name``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from loopwise.errors import InvalidArgumentError

__all__ = [
    "ATTRIBUTES",
    "MAX_CLAUSES",
    "MAX_FILTER_CHARS",
    "MAX_ORDER_TERMS",
    "Clause",
    "OrderTerm",
    "parse_filter",
    "parse_order_by",
]

Kind = Literal["metrics", "params", "tags", "attributes"]
ATTRIBUTES = {
    "name": "name",
    "status": "status",
    "start_time": "start_ms",
    "end_time": "end_ms",
    "id": "id",
}
OPERATORS = ("!=", ">=", "<=", "=", ">", "<", "like", "ilike")
_KIND_ALIASES: dict[str, Kind] = {
    "metric": "metrics",
    "metrics": "metrics",
    "param": "params",
    "params": "params",
    "tag": "tags",
    "tags": "tags",
    "attribute": "attributes",
    "attributes": "attributes",
    "attr": "attributes",
}
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*(?:\.(?:`[^`]+`|[A-Za-z0-9_\-/:]+))?"
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<and>and\b)
      | (?P<op>!=|>=|<=|=|>|<|ilike\b|like\b)
      | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf\b|nan\b)
      | (?P<ident>"""
    + _IDENT
    + r""")
    )""",
    re.VERBOSE | re.IGNORECASE,
)

MAX_FILTER_CHARS = 10_000
MAX_CLAUSES = 100
MAX_ORDER_TERMS = 20
"""Bounds of the language: a filter longer or with more clauses is refused (a 400), not
turned into a query too deep for the database."""
_QUOTED_CHARS = 200  # of the user's text, in messages

EXAMPLE = "metrics.auc > 0.8 and params.model = 'hgb'"
ORDER_EXAMPLE = "metrics.auc desc"


@dataclass(frozen=True)
class Clause:
    kind: Kind
    key: str
    op: str
    value: str | float


@dataclass(frozen=True)
class OrderTerm:
    kind: Kind
    key: str
    descending: bool


def _split_key(ident: str, text: str, parameter: str = "filter") -> tuple[Kind, str]:
    if "." in ident:
        prefix, key = ident.split(".", 1)
        kind = _KIND_ALIASES.get(prefix.lower())
        if kind is None:
            raise _error(
                text,
                f"unknown prefix {prefix!r}; use metrics, params, tags or attributes, e.g. metrics.auc",
                parameter,
            )
        key = key.strip("`")
    else:
        kind, key = "attributes", ident
    if kind == "attributes" and key.lower() not in ATTRIBUTES:
        raise _error(
            text, f"unknown attribute {key!r}; known: {', '.join(sorted(ATTRIBUTES))}", parameter
        )
    return kind, key.lower() if kind == "attributes" else key


def _error(text: str, what: str, parameter: str = "filter") -> InvalidArgumentError:
    if parameter == "order_by":
        expected = f"Expected a key and an optional 'asc' or 'desc', e.g. {ORDER_EXAMPLE!r}"
        subject = "run order term"
    else:
        expected = f"Expected clauses joined by 'and', e.g. {EXAMPLE!r}"
        subject = "run filter"
    shown = text if len(text) <= _QUOTED_CHARS else text[:_QUOTED_CHARS] + "…"
    return InvalidArgumentError(
        f"Could not parse the {subject} {shown!r}: {what}. {expected}.",
        parameter=parameter,
        received=shown,
    )


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            at = len(text) - len(text[pos:].lstrip())  # the offending text, not the space before
            raise _error(text, f"unexpected text at position {at}: {text[at : at + 20]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def parse_filter(text: str) -> list[Clause]:
    if not isinstance(text, str):
        raise InvalidArgumentError(
            f"Expected a filter string, got {type(text).__name__}.", parameter="filter"
        )
    if len(text) > MAX_FILTER_CHARS:
        raise _error(
            text,
            f"it has {len(text)} characters, more than the {MAX_FILTER_CHARS} a filter may have",
        )
    tokens = _tokens(text)
    if len(tokens) > 4 * MAX_CLAUSES:  # each clause is 3 tokens and an 'and'
        raise _error(
            text,
            f"it has {(len(tokens) + 1) // 4} clauses, more than the {MAX_CLAUSES} a filter may "
            "have; narrow it with fewer, more selective clauses",
        )
    clauses: list[Clause] = []
    i = 0
    while i < len(tokens):
        if len(tokens) - i < 3:
            raise _error(text, "a clause needs a key, an operator and a value")
        (k_kind, ident), (o_kind, op), (v_kind, raw) = tokens[i : i + 3]
        if k_kind != "ident" or o_kind != "op" or v_kind not in ("string", "number"):
            raise _error(text, f"expected 'key operator value' near {ident!r}")
        kind, key = _split_key(ident, text)
        op = op.lower()
        value: str | float
        if v_kind == "string":
            value = raw[1:-1].replace("\\'", "'").replace('\\"', '"')
            if kind == "metrics":
                raise _error(text, f"metric {key!r} is compared with a string; use a number")
        else:
            value = float(raw)
            is_time = kind == "attributes" and key in ("start_time", "end_time")
            if math.isnan(value) and (op not in ("=", "!=") or kind != "metrics"):
                # NaN is not ordered: `> nan` is never true in IEEE arithmetic, and SQL has no
                # NaN at all. `= nan` / `!= nan` ask whether a metric's value is NaN.
                raise _error(
                    text,
                    f"{key!r} {op} nan compares with NaN, which is neither larger nor smaller "
                    "than any number; use metrics.<key> = nan (or != nan) to find runs whose "
                    "value is (or is not) NaN",
                )
            if kind != "metrics" and not is_time:
                value = raw  # params, tags and names compare as text
        if op in ("like", "ilike") and kind == "metrics":
            raise _error(text, f"{op} does not apply to metric {key!r}")
        clauses.append(Clause(kind, key, op, value))
        i += 3
        if i < len(tokens):
            if tokens[i][0] != "and":
                raise _error(text, f"expected 'and' before {tokens[i][1]!r}")
            i += 1
            if i == len(tokens):
                raise _error(text, "a clause must follow 'and'")
    return clauses


def parse_order_by(terms: list[str] | tuple[str, ...]) -> list[OrderTerm]:
    if len(terms) > MAX_ORDER_TERMS:
        raise _error(
            repr(list(terms[:3]))[:-1] + ", …]",
            f"{len(terms)} order terms, more than the {MAX_ORDER_TERMS} allowed",
            "order_by",
        )
    result = []
    for term in terms:
        if not isinstance(term, str):
            raise _error(repr(term), f"expected a string, got {type(term).__name__}", "order_by")
        parts = term.strip().rsplit(None, 1)
        descending = False
        if len(parts) == 2 and parts[1].lower() in ("asc", "desc"):
            descending = parts[1].lower() == "desc"
            ident = parts[0]
        else:
            ident = term.strip()
        # A misspelt direction ("desc" as "descending") must not silently become part of the key.
        if not re.fullmatch(_IDENT, ident):
            raise _error(term, f"{ident!r} is not a key", "order_by")
        kind, key = _split_key(ident, term, "order_by")
        result.append(OrderTerm(kind, key, descending))
    return result
