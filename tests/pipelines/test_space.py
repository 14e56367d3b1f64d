"""A sweep's space read from the CLI's text: ``--grid key=v1,v2`` and ``--random key=DIST``."""

from __future__ import annotations

import pytest

import loopwise as lw
from loopwise.errors import InvalidArgumentError
from loopwise.pipelines.space import LogUniform, parse_grid, parse_space


@lw.step
def combine(rate: float, layers: list[int], name: str) -> str:
    return f"{name}{rate}{layers}"


@lw.pipeline
def tuned(rate: float = 0.1, layers: list[int] | None = None, name: str = "m") -> None:
    combine(rate, layers or [1], name)


def test_grid_values_are_read_by_each_params_annotation() -> None:
    grid = parse_grid(tuned, ["rate=1,0.5", "layers=[1,2],[3]", "name=a,b", "other=x,2"])
    assert grid == {
        "rate": [1.0, 0.5],  # a float param: 1 is 1.0
        "layers": [[1, 2], [3]],  # commas inside brackets stay
        "name": ["a", "b"],
        "other": ["x", 2],  # undeclared: read loosely, building names it
    }
    assert isinstance(grid["rate"][0], float)


@pytest.mark.parametrize(
    ("pairs", "words"),
    [(["rate"], "Expected --grid key=v1,v2"), (["rate=1,"], "Expected --grid key=v1,v2"),
     (["rate=1", "rate=2"], "is given twice")],
)  # fmt: skip
def test_bad_grid_text_is_refused(pairs: list[str], words: str) -> None:
    with pytest.raises(InvalidArgumentError, match=words) as info:
        parse_grid(tuned, pairs)
    assert info.value.details["parameter"] == "grid"


def test_a_random_space_is_read_from_text() -> None:
    assert parse_space([" rate = loguniform(1e-3, 10)"]) == {"rate": LogUniform(1e-3, 10.0)}
    with pytest.raises(InvalidArgumentError, match="Expected --random key=DIST") as info:
        parse_space(["loguniform(1,2)"])
    assert info.value.details["parameter"] == "random"
