"""What a run read and wrote: the dataset versions it used, its artifacts, and the runs that used
a dataset version (``loopwise runs show``, ``loopwise data show``)."""

from __future__ import annotations

from loopwise.context import current
from loopwise.store import ArtifactFile, DatasetVersion

__all__ = ["dataset_runs", "run_artifacts", "run_datasets"]


def run_datasets(run_id: str) -> list[DatasetVersion]:
    """The dataset versions ``run_id`` used (``run.use(dataset)``), in the current store."""
    return current().store.run_datasets(run_id)


def run_artifacts(run_id: str, prefix: str = "") -> list[ArtifactFile]:
    """The files logged to ``run_id`` (those under ``prefix``), with their sizes and digests."""
    return current().store.list_artifacts(run_id, prefix)


def dataset_runs(dataset_version_id: int) -> list[str]:
    """The ids of the runs that used a dataset version."""
    return current().store.dataset_runs(dataset_version_id)
