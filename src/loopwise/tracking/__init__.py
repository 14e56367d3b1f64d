"""Experiment tracking: runs with params, metrics, tags, artifacts and their environment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopwise.tracking.environment import capture_environment
from loopwise.tracking.run import ActiveRun, active_run, start_run

if TYPE_CHECKING:
    from loopwise.tracking.search import (
        compare_runs,
        get_run,
        metric_history,
        runs_frame,
        search_runs,
    )

# Searching returns pandas frames; logging to a run needs none. Imported on first use (PEP 562) so
# that `lw.start_run` in a training script does not load pandas and PyArrow.
_SEARCH = {"compare_runs", "get_run", "metric_history", "runs_frame", "search_runs"}


def __getattr__(name: str) -> Any:
    if name in _SEARCH:
        from loopwise.tracking import search

        value = getattr(search, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SEARCH)


__all__ = [
    "ActiveRun",
    "active_run",
    "capture_environment",
    "compare_runs",
    "get_run",
    "metric_history",
    "runs_frame",
    "search_runs",
    "start_run",
]
