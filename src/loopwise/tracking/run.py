"""Runs as the user sees them: start one, log to it, end it.

``log_metric`` never waits for the database: the value goes to the store's durable spool (it
survives the process being killed once the call returns) and reaches the database in the
background.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from loopwise.context import current
from loopwise.errors import InvalidArgumentError
from loopwise.store import DatasetVersion, MetricEntry, Run, RunStatus, Store
from loopwise.store.checks import check_key
from loopwise.tracking.environment import capture_environment

if TYPE_CHECKING:
    from loopwise.store import ArtifactFile, ModelVersion

__all__ = ["ActiveRun", "active_run", "end_open_runs", "start_run"]

_open_runs: weakref.WeakSet[ActiveRun] = weakref.WeakSet()
_local = threading.local()


class ActiveRun:
    """A run being recorded. Use it as a context manager: it ends FAILED if the block raises."""

    def __init__(self, store: Store, run: Run) -> None:
        self.store = store
        self.id = run.id
        self.name = run.name
        self.project = run.project
        self._steps: dict[str, int] = {}
        self._ended = False

    # -- reading --------------------------------------------------------------------------------
    @property
    def info(self) -> Run:
        """The run as stored now (waits for metrics still in flight)."""
        self.store.flush()
        return self.store.get_run(self.id)

    def __repr__(self) -> str:
        return f"ActiveRun(id={self.id!r}, name={self.name!r}, project={self.project!r})"

    # -- logging --------------------------------------------------------------------------------
    def log_param(self, key: str, value: Any) -> None:
        self.store.log_params(self.id, {key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.store.log_params(self.id, params)

    def set_tag(self, key: str, value: Any) -> None:
        self.store.set_tags(self.id, {key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.store.set_tags(self.id, tags)

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp_ms: int | None = None
    ) -> None:
        """Record one value. Without ``step``, each key counts its own steps 0, 1, 2, …"""
        check_key(key, "metric")  # before it is used as a dict key below
        stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        self._log({key: value}, step, stamp)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record several values at once: all are checked before any is kept."""
        if not isinstance(metrics, Mapping):
            raise InvalidArgumentError(
                f"Expected a mapping of metric names to numbers, got {type(metrics).__name__}. "
                "Pass a dict, e.g. {'auc': 0.91}.",
                parameter="metrics",
            )
        self._log(metrics, step, int(time.time() * 1000))

    def _log(self, metrics: Mapping[str, float], step: int | None, timestamp_ms: int) -> None:
        steps = {key: self._steps.get(key, 0) if step is None else step for key in metrics}
        self.store.log_metrics_async(
            [
                MetricEntry(self.id, key, value, steps[key], timestamp_ms)
                for key, value in metrics.items()
            ]
        )
        # Only values that were accepted advance the automatic step counters.
        self._steps.update({key: s + 1 for key, s in steps.items() if isinstance(s, int)})

    def log_artifact(self, local_path: str | Path, artifact_path: str = "") -> list[ArtifactFile]:
        """Store a file or a whole folder under ``artifact_path`` in the run's artifact tree."""
        return self.store.log_artifact(self.id, Path(local_path), artifact_path)

    def use(self, dataset: DatasetVersion, role: str = "input") -> None:
        """Record that this run read ``dataset`` (lineage)."""
        if not isinstance(dataset, DatasetVersion):
            raise InvalidArgumentError(
                f"Expected a DatasetVersion (what lw.log_dataset returns), got {type(dataset).__name__}.",
                parameter="dataset",
            )
        self.store.link_dataset(self.id, dataset.id, role)

    def log_model(self, model: Any, name: str, **kwargs: Any) -> ModelVersion:
        """Register ``model`` as a new version of ``name``, linked to this run.

        Keyword arguments are those of :func:`loopwise.models.log_model`.
        """
        from loopwise.registry.models import log_model

        return log_model(
            model, name, run_id=self.id, store=self.store, project=self.project, **kwargs
        )

    # -- ending ---------------------------------------------------------------------------------
    def end(self, status: RunStatus | str = RunStatus.FINISHED) -> Run:
        if self._ended:
            return self.store.get_run(self.id)
        try:
            status = RunStatus(status)
        except ValueError:
            raise InvalidArgumentError(
                f"Expected a run status among {[s.value for s in RunStatus]}, got {status!r}.",
                parameter="status",
            ) from None
        self._ended = True
        _open_runs.discard(self)
        stack: list[ActiveRun] = getattr(_local, "stack", [])
        if self in stack:
            stack.remove(self)
        return self.store.end_run(self.id, status)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is KeyboardInterrupt:
            self.end(RunStatus.KILLED)
        else:
            self.end(RunStatus.FAILED if exc_type is not None else RunStatus.FINISHED)


def start_run(
    name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    *,
    capture_env: bool = True,
) -> ActiveRun:
    """Start a run in the current project; ``with lw.start_run(...) as run:`` ends it for you."""
    ctx = current()
    if name is None:
        name = time.strftime("run-%Y%m%d-%H%M%S")
    environment = capture_environment() if capture_env else {}
    run = ctx.store.create_run(ctx.project, name, tags=tags, environment=environment)
    active = ActiveRun(ctx.store, run)
    _open_runs.add(active)
    if not hasattr(_local, "stack"):
        _local.stack = []
    _local.stack.append(active)
    return active


def active_run() -> ActiveRun | None:
    """The innermost run started in this thread and not yet ended."""
    stack: list[ActiveRun] = getattr(_local, "stack", [])
    return stack[-1] if stack else None


def end_open_runs() -> None:
    """At exit: runs left open by a script that finished normally are FINISHED."""
    for run in list(_open_runs):
        run.end(RunStatus.FINISHED)
