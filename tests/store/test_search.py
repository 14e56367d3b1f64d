"""The run search language: filters and order terms, parsed the same for every backend."""

from __future__ import annotations

import math

import pytest

from loopwise.errors import InvalidArgumentError
from loopwise.store.search import EXAMPLE, Clause, OrderTerm, parse_filter, parse_order_by


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_filter(text: str) -> None:
    assert parse_filter(text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.auc > 0.8", Clause("metrics", "auc", ">", 0.8)),
        ("metric.auc>=1e-3", Clause("metrics", "auc", ">=", 0.001)),
        ("metrics.auc <= -2", Clause("metrics", "auc", "<=", -2.0)),
        ("metrics.auc < .5", Clause("metrics", "auc", "<", 0.5)),
        ("metrics.auc != 3.", Clause("metrics", "auc", "!=", 3.0)),
        ("metrics.auc = +inf", Clause("metrics", "auc", "=", math.inf)),
        ("metrics.auc > -inf", Clause("metrics", "auc", ">", -math.inf)),
        ("metrics.train/loss < 1", Clause("metrics", "train/loss", "<", 1.0)),
        ("metrics.val-loss:ema < 1", Clause("metrics", "val-loss:ema", "<", 1.0)),
        ("metrics.`val auc` > 0.5", Clause("metrics", "val auc", ">", 0.5)),
        ("metrics.`a.b` > 0.5", Clause("metrics", "a.b", ">", 0.5)),
        ("params.model = 'hgb'", Clause("params", "model", "=", "hgb")),
        ('param.model = "hgb"', Clause("params", "model", "=", "hgb")),
        ("params.note = 'it\\'s'", Clause("params", "note", "=", "it's")),
        ("params.note = 'a and b'", Clause("params", "note", "=", "a and b")),
        ("params.depth = 6", Clause("params", "depth", "=", "6")),
        ("params.lr = 1.50", Clause("params", "lr", "=", "1.50")),
        ("params.start_time = 5", Clause("params", "start_time", "=", "5")),
        ("tags.team like 'c%'", Clause("tags", "team", "like", "c%")),
        ("tag.team ILIKE 'C%'", Clause("tags", "team", "ilike", "C%")),
        ("TAGS.Team = 'x'", Clause("tags", "Team", "=", "x")),
        ("status = 'FINISHED'", Clause("attributes", "status", "=", "FINISHED")),
        ("attributes.name != 'x'", Clause("attributes", "name", "!=", "x")),
        ("attr.NAME = 'x'", Clause("attributes", "name", "=", "x")),
        ("name = 12", Clause("attributes", "name", "=", "12")),
        ("start_time > 1700000000000", Clause("attributes", "start_time", ">", 1.7e12)),
        ("attribute.end_time <= 5", Clause("attributes", "end_time", "<=", 5.0)),
        ("id = 'abc'", Clause("attributes", "id", "=", "abc")),
    ],
)
def test_single_clause(text: str, expected: Clause) -> None:
    assert parse_filter(text) == [expected]


def test_value_types() -> None:
    [metric, param, time] = parse_filter("metrics.a = 1 and params.b = 1 and start_time = 1")
    assert isinstance(metric.value, float)
    assert isinstance(param.value, str)
    assert isinstance(time.value, float)


def test_nan_filter() -> None:
    [clause] = parse_filter("metrics.auc = nan")
    assert isinstance(clause.value, float) and math.isnan(clause.value)
    [clause] = parse_filter("metrics.auc != NaN")
    assert clause.op == "!=" and math.isnan(float(clause.value))


@pytest.mark.parametrize("op", [">", ">=", "<", "<="])
def test_ordering_with_nan_is_refused(op: str) -> None:
    # In IEEE arithmetic `x > nan` is never true; matching every run that is not NaN (as a
    # negated NaN test once did) would be a silent wrong answer.
    with pytest.raises(InvalidArgumentError, match="use metrics.<key> = nan"):
        parse_filter(f"metrics.auc {op} nan")
    with pytest.raises(InvalidArgumentError, match="compares with NaN"):
        parse_filter(f"start_time {op} nan")


def test_filter_size_is_bounded() -> None:
    assert len(parse_filter(" and ".join(["id = 1"] * 100))) == 100
    with pytest.raises(InvalidArgumentError, match="101 clauses, more than the 100"):
        parse_filter(" and ".join(["id = 1"] * 101))
    with pytest.raises(InvalidArgumentError, match="10001 characters") as info:
        parse_filter("name = '" + "x" * 9992 + "'")
    assert len(str(info.value)) < 600
    with pytest.raises(InvalidArgumentError, match="21 order terms"):
        parse_order_by(["name"] * 21)


def test_clauses_joined_by_and() -> None:
    clauses = parse_filter("metrics.auc > 0.85 and params.model = 'hgb' AND tags.team != 'x'")
    assert clauses == [
        Clause("metrics", "auc", ">", 0.85),
        Clause("params", "model", "=", "hgb"),
        Clause("tags", "team", "!=", "x"),
    ]


def test_example_in_messages_parses() -> None:
    assert len(parse_filter(EXAMPLE)) == 2


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("metrics.auc", "key, an operator and a value"),
        ("metrics.auc >", "key, an operator and a value"),
        ("metrics.auc > 0.5 params.x = 'a'", "expected 'and' before 'params.x'"),
        ("metrics.auc > 0.5 or params.x = 'a'", "expected 'and' before 'or'"),
        ("metrics.auc > 0.5 and", "a clause must follow 'and'"),
        ("and metrics.auc > 0.5", "expected 'key operator value'"),
        ("metrics.auc 0.5 >", "expected 'key operator value'"),
        ("metrics.auc = params.x", "expected 'key operator value'"),
        ("metrics.auc > 'high'", "compared with a string"),
        ("metrics.auc like 0.5", "like does not apply to metric 'auc'"),
        ("metrics.auc ilike 0.5", "ilike does not apply"),
        ("foo.auc > 1", "unknown prefix 'foo'"),
        ("bogus = 1", "unknown attribute 'bogus'"),
        ("attributes.bogus = 1", "unknown attribute 'bogus'"),
        ("params.x = 'open", 'unexpected text at position 11: "\'open"'),
        ("metrics.auc >> 1", "expected 'key operator value'"),
        ("metrics.auc ~ 1", "unexpected text at position 12"),
        ("metrics.`auc > 1", "unexpected text"),
    ],
)
def test_bad_filters(text: str, fragment: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        parse_filter(text)
    message = str(info.value)
    assert fragment in message
    assert repr(text) in message
    assert f"e.g. {EXAMPLE!r}" in message
    assert info.value.details["parameter"] == "filter"


def test_filter_must_be_a_string() -> None:
    with pytest.raises(InvalidArgumentError, match="Expected a filter string, got int"):
        parse_filter(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("terms", "expected"),
    [
        ([], []),
        (["metrics.auc desc"], [OrderTerm("metrics", "auc", True)]),
        (["metrics.auc DESC"], [OrderTerm("metrics", "auc", True)]),
        (["metrics.auc asc"], [OrderTerm("metrics", "auc", False)]),
        (["metrics.auc"], [OrderTerm("metrics", "auc", False)]),
        (["  params.model  "], [OrderTerm("params", "model", False)]),
        (["metrics.`val auc` desc"], [OrderTerm("metrics", "val auc", True)]),
        (["metrics.`val auc`"], [OrderTerm("metrics", "val auc", False)]),
        (["start_time asc"], [OrderTerm("attributes", "start_time", False)]),
        (["Name"], [OrderTerm("attributes", "name", False)]),
        (
            ["tag.team desc", "attr.end_time"],
            [
                OrderTerm("tags", "team", True),
                OrderTerm("attributes", "end_time", False),
            ],
        ),
    ],
)
def test_order_by(terms: list[str], expected: list[OrderTerm]) -> None:
    assert parse_order_by(terms) == expected


def test_order_by_accepts_a_tuple() -> None:
    assert parse_order_by(("name desc",)) == [OrderTerm("attributes", "name", True)]


@pytest.mark.parametrize(
    ("term", "fragment"),
    [
        ("foo.bar desc", "unknown prefix 'foo'"),
        ("bogus", "unknown attribute 'bogus'"),
        ("metrics.auc descending", "'metrics.auc descending' is not a key"),
        ("metrics.val auc", "is not a key"),
        ("", "'' is not a key"),
        ("desc", "unknown attribute 'desc'"),
    ],
)
def test_bad_order_terms(term: str, fragment: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        parse_order_by([term])
    message = str(info.value)
    assert fragment in message
    assert "order term" in message and "'metrics.auc desc'" in message
    assert info.value.details["parameter"] == "order_by"


def test_order_term_must_be_a_string() -> None:
    with pytest.raises(InvalidArgumentError, match="expected a string, got int"):
        parse_order_by([3])  # type: ignore[list-item]
