"""Searching and comparing runs through the SDK."""

from __future__ import annotations

import pytest

import loopwise as lw
from loopwise.context import Context
from loopwise.errors import InvalidArgumentError


@pytest.fixture
def three_runs(ctx: Context) -> list[str]:
    ids = []
    for name, model, auc in (("a", "hgb", 0.91), ("b", "lr", 0.88), ("c", "hgb", 0.85)):
        with lw.start_run(
            name=name, tags={"team": "x" if name != "c" else "y"}, capture_env=False
        ) as run:
            run.log_params({"model": model})
            run.log_metric("auc", auc)
        ids.append(run.id)
    return ids


def test_filter_by_metric_param_and_tag(three_runs: list[str]) -> None:
    assert {r.name for r in lw.search_runs("metrics.auc > 0.86")} == {"a", "b"}
    assert {r.name for r in lw.search_runs("params.model = 'hgb' and tags.team = 'x'")} == {"a"}
    ordered = lw.search_runs(order_by="metrics.auc asc")
    assert [r.name for r in ordered] == ["c", "b", "a"]
    assert len(lw.search_runs(max_results=2)) == 2


def test_bad_filter_explains_the_syntax(three_runs: list[str]) -> None:
    with pytest.raises(InvalidArgumentError, match="metrics.auc > 0.8 and"):
        lw.search_runs("auc >> 1")


def test_compare_and_frame(three_runs: list[str]) -> None:
    frame = lw.compare_runs(three_runs[:2])
    assert list(frame.index) == ["metrics.auc", "params.model"]
    assert frame.iloc[0].tolist() == [0.91, 0.88]
    table = lw.runs_frame(lw.search_runs(order_by="name"))
    assert table["name"].tolist() == ["a", "b", "c"]
    assert table["metrics.auc"].tolist() == [0.91, 0.88, 0.85]
