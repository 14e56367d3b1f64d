"""Find, read and compare runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from loopwise.context import current
from loopwise.errors import InvalidArgumentError
from loopwise.store import Metric, Run

__all__ = ["compare_runs", "get_run", "metric_history", "runs_frame", "search_runs"]


def get_run(run_id: str) -> Run:
    ctx = current()
    ctx.store.flush()
    return ctx.store.get_run(run_id)


def metric_history(run_id: str, key: str) -> list[Metric]:
    ctx = current()
    ctx.store.flush()
    return ctx.store.get_metric_history(run_id, key)


def search_runs(
    filter: str = "",
    order_by: Sequence[str] = (),
    max_results: int = 1000,
    project: str | None = None,
) -> list[Run]:
    """Runs of the current project matching ``filter``, e.g. ``"metrics.auc > 0.8"``."""
    ctx = current()
    if isinstance(order_by, str):
        order_by = [order_by]
    ctx.store.flush()
    return ctx.store.search_runs(project or ctx.project, filter, list(order_by), max_results)


def runs_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run: id, name, status, times, then ``params.*``, ``metrics.*``, ``tags.*``."""
    rows: list[dict[str, Any]] = []
    for run in runs:
        row: dict[str, Any] = {
            "id": run.id,
            "name": run.name,
            "status": run.status.value,
            "start_time": run.start_time,
            "duration_s": run.duration_s,
        }
        row.update({f"params.{k}": v for k, v in sorted(run.params.items())})
        row.update({f"metrics.{k}": v for k, v in sorted(run.metrics.items())})
        row.update({f"tags.{k}": v for k, v in sorted(run.tags.items())})
        rows.append(row)
    return pd.DataFrame(rows)


def compare_runs(run_ids: Sequence[str]) -> pd.DataFrame:
    """Params and metrics side by side: one row per param or metric, one column per run."""
    if isinstance(run_ids, str) or len(run_ids) < 1:
        raise InvalidArgumentError(
            f"Expected a list of run ids, got {run_ids!r}.", parameter="run_ids"
        )
    runs = [get_run(run_id) for run_id in run_ids]
    keys = sorted(
        {f"params.{k}" for r in runs for k in r.params}
        | {f"metrics.{k}" for r in runs for k in r.metrics}
    )
    data: dict[str, list[Any]] = {}
    for run in runs:
        column = f"{run.name} ({run.id[:8]})"
        data[column] = [
            run.params.get(k[7:]) if k.startswith("params.") else run.metrics.get(k[8:])
            for k in keys
        ]
    return pd.DataFrame(data, index=pd.Index(keys, name="key"))
