"""Sweeps: a pipeline run once per point of a param grid or a random sample of a param space.

All points run as one merged DAG, so a step whose inputs do not depend on the swept params
(loading, splitting) runs once and every point reuses it; the rest run in parallel. Each point
is a pipeline run tagged with the sweep's id, comparable with ``loopwise runs compare``.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from loopwise.errors import InvalidArgumentError, PipelineFailedError
from loopwise.pipelines.graph import Pipeline
from loopwise.pipelines.results import PipelineResult
from loopwise.pipelines.runner import EventHandler, execute_graphs
from loopwise.pipelines.space import (
    Choice,
    Distribution,
    IntUniform,
    LogUniform,
    Uniform,
    parse_distribution,
    points,
)
from loopwise.tracking.search import get_run

__all__ = [
    "Choice",
    "Distribution",
    "IntUniform",
    "LogUniform",
    "SweepPoint",
    "SweepResult",
    "Uniform",
    "parse_distribution",
    "points",
    "sweep",
]

SWEEP_TAG = "loopwise.sweep"


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: its params as given and the metrics its run logged."""

    run_id: str
    status: str
    params: dict[str, Any]
    metrics: dict[str, float]


def _check_mode(mode: str) -> None:
    if mode not in ("max", "min"):
        raise InvalidArgumentError(f"Expected mode 'max' or 'min', got {mode!r}.", parameter="mode")


def _rank(value: float | None, mode: str) -> float:
    if not isinstance(value, int | float) or math.isnan(value):
        return math.inf  # points without the metric go last
    return -float(value) if mode == "max" else float(value)


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
        _check_mode(mode)
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

    def ranked(self, metric: str | None = None, mode: str = "max") -> list[SweepPoint]:
        """Every point, best ``metric`` first (``mode="min"``: lowest first), points without it
        last; in the order they ran when ``metric`` is None."""
        _check_mode(mode)
        found = [
            SweepPoint(
                r.run_id, r.status, r.params, dict(sorted(get_run(r.run_id).metrics.items()))
            )
            for r in self.runs
        ]
        if metric is None:
            return found
        return sorted(found, key=lambda point: _rank(point.metrics.get(metric), mode))

    def failure(self) -> PipelineFailedError | None:
        """The error that says which points failed and where the first one did, or None."""
        failed = [r for r in self.runs if r.failed]
        if not failed:
            return None
        first = failed[0].steps[failed[0].failed[0]]
        return PipelineFailedError(
            f"{len(failed)} of {len(self.runs)} points failed; the first, run "
            f"{failed[0].run_id}, in step {first.node!r}: {first.error}. Fix the step and "
            f"sweep again (finished steps are cached), or resume one point: "
            f"`loopwise pipeline resume {failed[0].run_id}`.\n\n"
            f"{first.traceback or ''}".rstrip(),
            failed=[r.run_id for r in failed],
        )


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
