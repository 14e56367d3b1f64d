"""Sweeps: the points of a grid or a random space, and a sweep run as one merged DAG whose
shared steps run once."""

from __future__ import annotations

import math
from typing import Any

import pytest

import loopwise as lw
from loopwise.context import Context
from loopwise.errors import InvalidArgumentError, PipelineDefinitionError
from loopwise.pipelines import Choice, IntUniform, LogUniform, Uniform, sweep
from loopwise.pipelines.sweeps import parse_distribution, points

from . import flows
from .support import step_runs

# -- points -------------------------------------------------------------------------------------


def test_a_grid_is_the_product_of_its_lists() -> None:
    assert points(grid={"a": [1, 2], "b": ["x", "y", "z"]}) == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 1, "b": "z"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
        {"a": 2, "b": "z"},
    ]


def test_random_samples_are_reproducible_by_seed_and_stay_in_range() -> None:
    space = {
        "lr": LogUniform(1e-4, 1.0),
        "frac": Uniform(0.1, 0.3),
        "depth": IntUniform(2, 4),
        "kind": Choice(("hgb", "lr")),
    }
    drawn = points(space=space, samples=20, seed=1)
    assert drawn == points(space=space, samples=20, seed=1)
    assert drawn != points(space=space, samples=20, seed=2)
    assert len(drawn) == 20
    for point in drawn:
        assert 1e-4 <= point["lr"] <= 1.0 and 0.1 <= point["frac"] <= 0.3
        assert point["depth"] in {2, 3, 4} and point["kind"] in {"hgb", "lr"}
    assert {p["depth"] for p in drawn} == {2, 3, 4}
    # Log-uniform: as many draws below 0.01 as above it (on a log scale 0.01 is the middle).
    assert sum(p["lr"] < 0.01 for p in drawn) >= 4


def test_a_grid_with_a_random_space_draws_samples_per_combination() -> None:
    drawn = points(grid={"a": [1, 2]}, space={"u": Uniform(0, 1)}, samples=3, seed=0)
    assert [p["a"] for p in drawn] == [1, 1, 1, 2, 2, 2]
    assert len({p["u"] for p in drawn}) == 6


@pytest.mark.parametrize(
    ("kwargs", "parameter", "words"),
    [
        ({"grid": {"a": []}}, "grid", "non-empty list"),
        ({"grid": {"a": "abc"}}, "grid", "non-empty list"),
        ({"grid": {"a": [1]}, "space": {"a": Uniform(0, 1)}, "samples": 2}, "space", "['a']"),
        ({"space": {"a": Uniform(0, 1)}, "samples": 0}, "samples", "samples >= 1"),
        ({"space": {"a": (0, 1)}, "samples": 1}, "space", "distribution"),
    ],
    ids=["empty-list", "string", "grid-and-space", "no-samples", "not-a-distribution"],
)
def test_bad_points_are_refused(kwargs: dict[str, Any], parameter: str, words: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        points(**kwargs)
    assert caught.value.details["parameter"] == parameter
    assert words in caught.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("uniform(0.01, 0.3)", Uniform(0.01, 0.3)),
        ("LogUniform(1e-4,1)", LogUniform(1e-4, 1.0)),
        ("int(2,8)", IntUniform(2, 8)),
        ("choice(a, 2, 0.5)", Choice(("a", 2, 0.5))),
    ],
)
def test_distributions_are_read_from_text(text: str, expected: Any) -> None:
    assert parse_distribution(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("normal(0, 1)", "Expected a distribution like"),
        ("uniform(1)", "two numbers"),
        ("uniform(a, b)", "two numbers"),
        ("uniform(3, 1)", "low < high"),
        ("int(1.5, 3)", "whole numbers"),
        ("loguniform(0, 1)", "positive bounds"),
        ("choice()", "at least one value"),
    ],
)
def test_bad_distribution_text_is_refused(text: str, words: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        parse_distribution(text)
    assert words in caught.value.message
    assert caught.value.details["parameter"] == "space"


# -- running ------------------------------------------------------------------------------------


def test_a_grid_sweep_runs_shared_steps_once_and_tags_each_point(ctx: Context) -> None:
    result = sweep(
        flows.tune,
        grid={"a": [1.0, 2.0], "b": [0, 1]},
        params={"n": 3},
        executor="inline",
    )
    assert len(result.runs) == 4
    # `numbers` reads only n, which every point shares: one execution for the whole sweep.
    assert len(step_runs("numbers")) == 1
    assert len(step_runs("loss")) == 4
    for index, (point, expected) in enumerate(
        zip(
            result.runs,
            [{"a": 1.0, "b": 0}, {"a": 1.0, "b": 1}, {"a": 2.0, "b": 0}, {"a": 2.0, "b": 1}],
            strict=True,
        )
    ):
        assert point.params == {"n": 3, **expected}
        stored = lw.get_run(point.run_id)
        assert stored.tags["loopwise.sweep"] == result.sweep_id
        assert stored.tags["loopwise.point"] == str(index)
        assert stored.tags["loopwise.kind"] == "pipeline"
        assert stored.params == {"n": "3", "a": str(expected["a"]), "b": str(expected["b"])}
        assert stored.status is lw.RunStatus.FINISHED
        assert stored.metrics["loss.loss"] == (expected["a"] - 2.0) ** 2 + expected["b"]
        assert point.output("loss") == {"loss": stored.metrics["loss.loss"]}
    tagged = lw.search_runs(f"tags.`loopwise.sweep` = '{result.sweep_id}'")
    assert sorted(r.id for r in tagged) == sorted(result.run_ids)

    best = result.best("loss.loss", mode="min")
    assert best.params == {"n": 3, "a": 2.0, "b": 0}
    assert result.best("loss.loss").params == {"n": 3, "a": 1.0, "b": 1}  # max by default

    frame = result.frame()
    assert list(frame["run_id"]) == result.run_ids
    assert list(frame["params.a"]) == [1.0, 1.0, 2.0, 2.0]
    assert list(frame["params.b"]) == [0, 1, 0, 1]
    assert list(frame["metrics.loss.loss"]) == [1.0, 2.0, 0.0, 1.0]
    assert set(frame["status"]) == {"FINISHED"}

    with pytest.raises(InvalidArgumentError, match="loss.loss"):
        result.best("nope")
    with pytest.raises(InvalidArgumentError, match="'max' or 'min'"):
        result.best("loss.loss", mode="lowest")


def test_a_random_sweep_is_reproducible_and_reuses_the_cache(ctx: Context) -> None:
    first = sweep(flows.tune, space={"a": Uniform(0, 4)}, samples=3, seed=5, executor="inline")
    again = sweep(flows.tune, space={"a": Uniform(0, 4)}, samples=3, seed=5, executor="inline")
    assert [r.params for r in again.runs] == [r.params for r in first.runs]
    assert len({r.params["a"] for r in first.runs}) == 3
    assert all(r.executed == [] for r in again.runs)
    assert again.sweep_id != first.sweep_id
    losses = [r.output("loss")["loss"] for r in first.runs]
    assert losses == [pytest.approx((r.params["a"] - 2.0) ** 2) for r in first.runs]
    assert not any(math.isnan(v) for v in losses)


def test_a_bad_point_is_refused_before_anything_runs(ctx: Context) -> None:
    with pytest.raises(PipelineDefinitionError) as caught:
        sweep(flows.tune, grid={"b": [0, "one"]}, executor="inline")
    assert caught.value.details["param"] == "b"
    with pytest.raises(PipelineDefinitionError, match="does not declare a param 'c'"):
        sweep(flows.tune, grid={"c": [1, 2]}, executor="inline")
    assert lw.search_runs() == []
