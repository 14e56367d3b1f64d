"""Sweeps: a pipeline run once per point of a param grid or a random sample of a param space.

All points run as one merged DAG, so a step whose inputs do not depend on the swept params
(loading, splitting) runs once and every point reuses it; the rest run in parallel. Each point
is a pipeline run tagged with the sweep's id, comparable with ``loopwise runs compare``.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from loopwise.errors import InvalidArgumentError
from loopwise.pipelines.graph import Pipeline, parse_value
from loopwise.pipelines.results import PipelineResult
from loopwise.pipelines.runner import EventHandler, execute_graphs
from loopwise.tracking.search import get_run

__all__ = [
    "Choice",
    "Distribution",
    "IntUniform",
    "LogUniform",
    "SweepResult",
    "Uniform",
    "parse_distribution",
    "points",
    "sweep",
]

SWEEP_TAG = "loopwise.sweep"


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


@dataclass
class SweepResult:
    sweep_id: str
    pipeline: str
    runs: list[PipelineResult] = field(default_factory=list)

    @property
    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.runs]

    def frame(self) -> pd.DataFrame:
        """One row per point: run id, status, the params, then the metrics its steps logged."""
        rows = []
        for result in self.runs:
            stored = get_run(result.run_id)
            row: dict[str, Any] = {"run_id": result.run_id, "status": result.status}
            row.update({f"params.{k}": v for k, v in result.params.items()})
            row.update({f"metrics.{k}": v for k, v in sorted(stored.metrics.items())})
            rows.append(row)
        return pd.DataFrame(rows)

    def best(self, metric: str, mode: str = "max") -> PipelineResult:
        """The finished point with the highest (``mode="min"``: lowest) ``metric``."""
        if mode not in ("max", "min"):
            raise InvalidArgumentError(
                f"Expected mode 'max' or 'min', got {mode!r}.", parameter="mode"
            )
        frame = self.frame()
        column = f"metrics.{metric}"
        if column not in frame or frame[column].isna().all():
            found = sorted(c[8:] for c in frame.columns if c.startswith("metrics."))
            raise InvalidArgumentError(
                f"No point logged metric {metric!r}. Metrics: {found}.", parameter="metric"
            )
        finished = frame[frame["status"] == "FINISHED"].dropna(subset=[column])
        if finished.empty:
            raise InvalidArgumentError(
                f"No finished point logged {metric!r}; every point failed.", parameter="metric"
            )
        index = finished[column].idxmax() if mode == "max" else finished[column].idxmin()
        return self.runs[int(str(index))]


def sweep(
    pipeline: Pipeline,
    *,
    grid: Mapping[str, Sequence[Any]] | None = None,
    space: Mapping[str, Distribution] | None = None,
    samples: int = 0,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    executor: str = "local",
    workers: int | None = None,
    cache: bool = True,
    on_event: EventHandler | None = None,
) -> SweepResult:
    """Run ``pipeline`` once per point; ``params`` are fixed for every point.

    Every point is built and checked before any step runs, so a bad value in the grid fails
    at once. A failing point does not stop the others; its result says what failed.
    """
    if not isinstance(pipeline, Pipeline):
        raise InvalidArgumentError(
            f"Expected a pipeline, got {type(pipeline).__name__}.", parameter="pipeline"
        )
    chosen = points(grid, space, samples, seed)
    if not chosen:
        raise InvalidArgumentError(
            "A sweep needs a grid or a random space (with samples >= 1).", parameter="grid"
        )
    fixed = dict(params or {})
    graphs = [pipeline.build({**fixed, **point}) for point in chosen]
    sweep_id = uuid.uuid4().hex[:12]
    results = execute_graphs(
        pipeline,
        graphs,
        executor=executor,
        workers=workers,
        cache=cache,
        seed=seed,
        tags=[{SWEEP_TAG: sweep_id, "loopwise.point": str(i)} for i in range(len(graphs))],
        on_event=on_event,
    )
    return SweepResult(sweep_id, pipeline.name, results)
