"""The store interface: everything durable in Loopwise goes through these methods.

Backends (embedded SQLite, PostgreSQL, and later the remote control plane) implement this
class and must pass the conformance suite in ``tests/store/conformance.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from loopwise.store.artifacts import ArtifactStore
from loopwise.store.entities import (
    ArtifactFile,
    DatasetVersion,
    Metric,
    ModelVersion,
    Project,
    RegisteredModel,
    Run,
    RunStatus,
)

__all__ = ["MetricEntry", "Store"]


class MetricEntry(NamedTuple):
    run_id: str
    key: str
    value: float
    step: int
    timestamp_ms: int


class Store(ABC):
    """Metadata, artifacts and metric streams of one Loopwise installation."""

    uri: str
    artifacts: ArtifactStore

    # -- lifecycle ----------------------------------------------------------------------------
    @abstractmethod
    def close(self) -> None:
        """Flush pending metric writes and release connections."""

    @abstractmethod
    def flush(self) -> None:
        """Block until every metric logged so far is written to the metadata store."""

    # -- projects -----------------------------------------------------------------------------
    @abstractmethod
    def get_or_create_project(self, name: str) -> Project: ...

    @abstractmethod
    def get_project(self, name: str) -> Project: ...

    @abstractmethod
    def list_projects(self) -> list[Project]: ...

    # -- runs ---------------------------------------------------------------------------------
    @abstractmethod
    def create_run(
        self,
        project: str,
        name: str,
        tags: Mapping[str, str] | None = None,
        environment: Mapping[str, Any] | None = None,
    ) -> Run: ...

    @abstractmethod
    def get_run(self, run_id: str) -> Run: ...

    @abstractmethod
    def end_run(self, run_id: str, status: RunStatus) -> Run: ...

    @abstractmethod
    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    @abstractmethod
    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        """Params are write-once: logging a different value for a key is a ConflictError."""

    @abstractmethod
    def log_metrics(self, entries: Sequence[MetricEntry]) -> None:
        """Write metric values synchronously; durable when this returns."""

    @abstractmethod
    def log_metrics_async(self, entries: Sequence[MetricEntry]) -> None:
        """Accept metric values without waiting for the database.

        All are checked before any is accepted. They must be durable against a killed process
        once this returns (a local spool); they reach the metadata store in the background, or
        on the next open after a crash.
        """

    def log_metric_async(self, entry: MetricEntry) -> None:
        """One value through :meth:`log_metrics_async`."""
        self.log_metrics_async([entry])

    @abstractmethod
    def get_metric_history(self, run_id: str, key: str) -> list[Metric]: ...

    @abstractmethod
    def search_runs(
        self,
        project: str,
        filter_string: str = "",
        order_by: Sequence[str] = (),
        max_results: int = 1000,
    ) -> list[Run]:
        """Runs of a project matching e.g. ``metrics.auc > 0.8 and params.model = 'hgb'``."""

    # -- run artifacts ------------------------------------------------------------------------
    @abstractmethod
    def log_artifact(
        self, run_id: str, local_path: Path, artifact_path: str = ""
    ) -> list[ArtifactFile]:
        """Store a file or a folder (recursively) under ``artifact_path`` in the run's tree."""

    @abstractmethod
    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactFile]: ...

    @abstractmethod
    def download_artifacts(self, run_id: str, artifact_path: str, dest: Path) -> Path:
        """Copy a file or folder of the run's tree to ``dest``, verifying every digest."""

    # -- datasets -----------------------------------------------------------------------------
    @abstractmethod
    def create_dataset_version(
        self,
        project: str,
        name: str,
        *,
        content_hash: str,
        artifact_digest: str,
        num_rows: int,
        schema: Mapping[str, str],
        split: str | None = None,
        description: str | None = None,
    ) -> tuple[DatasetVersion, bool]:
        """Register a version; returns ``(version, created)``. Same content gives the same version."""

    @abstractmethod
    def get_dataset_version(
        self, project: str, name: str, version: int | None = None
    ) -> DatasetVersion:
        """A version by number, or the latest when ``version`` is None."""

    @abstractmethod
    def list_dataset_versions(
        self, project: str, name: str | None = None
    ) -> list[DatasetVersion]: ...

    @abstractmethod
    def link_dataset(self, run_id: str, dataset_version_id: int, role: str = "input") -> None: ...

    @abstractmethod
    def run_datasets(self, run_id: str) -> list[DatasetVersion]: ...

    @abstractmethod
    def dataset_runs(self, dataset_version_id: int) -> list[str]:
        """Ids of the runs that used a dataset version."""

    # -- registry -----------------------------------------------------------------------------
    @abstractmethod
    def create_model_version(
        self,
        project: str,
        name: str,
        *,
        flavour: str,
        artifact_digest: str,
        run_id: str | None = None,
        signature: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        description: str | None = None,
    ) -> ModelVersion:
        """Next version number under ``name``; records the run's metrics and datasets."""

    @abstractmethod
    def get_model_version(self, project: str, name: str, version: int) -> ModelVersion: ...

    @abstractmethod
    def list_models(self, project: str) -> list[RegisteredModel]: ...

    @abstractmethod
    def list_model_versions(self, project: str, name: str) -> list[ModelVersion]: ...

    @abstractmethod
    def set_alias(self, project: str, name: str, alias: str, version: int) -> int | None:
        """Point ``alias`` at ``version`` atomically; returns the version it pointed at before."""

    @abstractmethod
    def delete_alias(self, project: str, name: str, alias: str) -> int: ...

    @abstractmethod
    def resolve_alias(self, project: str, name: str, alias: str) -> int: ...
