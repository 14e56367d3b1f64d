"""Experiment tracking: runs with params, metrics, tags, artifacts and their environment."""

from loopwise.tracking.environment import capture_environment
from loopwise.tracking.run import ActiveRun, active_run, start_run
from loopwise.tracking.search import compare_runs, get_run, metric_history, runs_frame, search_runs

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
