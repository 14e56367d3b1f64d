"""A sweep's param space: grids, random distributions, the points drawn from them, and the
``key=…`` text the CLI reads them from. Defining a space loads nothing that runs a pipeline."""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loopwise.errors import InvalidArgumentError
from loopwise.pipelines.graph import Pipeline, parse_value

__all__ = [
    "Choice",
    "Distribution",
    "IntUniform",
    "LogUniform",
    "Uniform",
    "parse_distribution",
    "parse_grid",
    "parse_space",
    "points",
]


class Distribution:
    """A param's range in a random search."""

    def sample(self, rng: random.Random) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Uniform(Distribution):
    low: float
    high: float

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)


@dataclass(frozen=True)
class LogUniform(Distribution):
    """Uniform on a log scale, for rates and regularisation strengths."""

    low: float
    high: float

    def sample(self, rng: random.Random) -> float:
        return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))


@dataclass(frozen=True)
class IntUniform(Distribution):
    """An integer from ``low`` to ``high``, both included."""

    low: int
    high: int

    def sample(self, rng: random.Random) -> int:
        return rng.randint(self.low, self.high)


@dataclass(frozen=True)
class Choice(Distribution):
    values: tuple[Any, ...]

    def sample(self, rng: random.Random) -> Any:
        return rng.choice(self.values)


_DISTRIBUTION = re.compile(r"^\s*(uniform|loguniform|int|choice)\s*\((.*)\)\s*$", re.IGNORECASE)
DISTRIBUTION_HELP = "uniform(0.01,0.3), loguniform(1e-4,1), int(2,8) or choice(a,b,c)"


def parse_distribution(text: str) -> Distribution:
    """``uniform(a,b)``, ``loguniform(a,b)``, ``int(a,b)`` or ``choice(x,y,…)``."""
    match = _DISTRIBUTION.match(text)
    if match is None:
        raise InvalidArgumentError(
            f"Expected a distribution like {DISTRIBUTION_HELP}, got {text!r}.",
            parameter="space",
        )
    name = match.group(1).lower()
    values = [parse_value(v.strip(), Any) for v in match.group(2).split(",") if v.strip()]
    if name == "choice":
        if not values:
            raise InvalidArgumentError("choice() needs at least one value.", parameter="space")
        return Choice(tuple(values))
    if len(values) != 2 or not all(isinstance(v, int | float) for v in values):
        raise InvalidArgumentError(
            f"Expected two numbers in {text!r}, e.g. {name}(1, 10).", parameter="space"
        )
    low, high = values
    if not low < high:
        raise InvalidArgumentError(
            f"Expected low < high in {text!r}, got {low} and {high}.", parameter="space"
        )
    if name == "int":
        if not (isinstance(low, int) and isinstance(high, int)):
            raise InvalidArgumentError(f"Expected whole numbers in {text!r}.", parameter="space")
        return IntUniform(low, high)
    if name == "loguniform" and low <= 0:
        raise InvalidArgumentError(
            f"Expected positive bounds for loguniform, got {text!r}.", parameter="space"
        )
    return (
        LogUniform(float(low), float(high))
        if name == "loguniform"
        else Uniform(float(low), float(high))
    )


def points(
    grid: Mapping[str, Sequence[Any]] | None = None,
    space: Mapping[str, Distribution] | None = None,
    samples: int = 0,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The param sets to run: every grid combination, each with ``samples`` random draws.

    With only a grid, each combination once; with only a space, ``samples`` draws.
    """
    grid = dict(grid or {})
    space = dict(space or {})
    for key, values in grid.items():
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise InvalidArgumentError(
                f"Expected a non-empty list of values for grid param {key!r}, got {values!r}.",
                parameter="grid",
            )
    for key, dist in space.items():
        if not isinstance(dist, Distribution):
            raise InvalidArgumentError(
                f"Expected a distribution for param {key!r} (e.g. Uniform(0.01, 0.3)), got "
                f"{dist!r}.",
                parameter="space",
            )
    both = set(grid) & set(space)
    if both:
        raise InvalidArgumentError(
            f"Params {sorted(both)} are both in the grid and in the random space; pick one.",
            parameter="space",
        )
    if space and (not isinstance(samples, int) or samples < 1):
        raise InvalidArgumentError(
            f"Expected samples >= 1 for a random search, got {samples!r}.", parameter="samples"
        )
    if not grid and not space:
        return []
    combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    if not space:
        return combos
    rng = random.Random(seed)
    return [
        {**combo, **{key: dist.sample(rng) for key, dist in space.items()}}
        for combo in combos
        for _ in range(samples)
    ]


def _split_values(text: str) -> list[str]:
    """``0.1,1`` -> two values; commas inside [...] or {...} stay, so lists can be swept."""
    values, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += char
    return [*values, current.strip()]


def parse_grid(pipeline: Pipeline, pairs: Sequence[str]) -> dict[str, list[Any]]:
    """``key=v1,v2,…`` strings (the CLI's ``--grid``), each value read by the param's annotation."""
    specs = pipeline.params
    grid: dict[str, list[Any]] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        values = _split_values(text)
        if not sep or not key or "" in values:
            raise InvalidArgumentError(
                f"Expected --grid key=v1,v2,…, got {pair!r}.", parameter="grid"
            )
        if key in grid:
            raise InvalidArgumentError(
                f"--grid {key} is given twice; list all its values once: {key}=v1,v2,…",
                parameter="grid",
            )
        # An unknown key is parsed loosely here; building the pipeline names it as undeclared.
        annotation = specs[key].annotation if key in specs else Any
        grid[key] = [parse_value(v, annotation) for v in values]
    return grid


def parse_space(pairs: Sequence[str]) -> dict[str, Distribution]:
    """``key=DIST`` strings (the CLI's ``--random``), e.g. ``C=loguniform(1e-3,10)``."""
    space: dict[str, Distribution] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidArgumentError(
                f"Expected --random key=DIST, e.g. C=loguniform(1e-3,10), got {pair!r}.",
                parameter="random",
            )
        space[key.strip()] = parse_distribution(text)
    return space
