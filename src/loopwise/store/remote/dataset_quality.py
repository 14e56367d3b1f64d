"""What the remote backend keeps about data quality: profile digests and per-dataset suites."""

from __future__ import annotations

from loopwise.store.codec import decode
from loopwise.store.entities import DatasetSuite, DatasetVersion
from loopwise.store.remote.catalog import RemoteCatalog, _dataset
from loopwise.store.remote.client import segment

__all__ = ["RemoteDatasetQuality"]


class RemoteDatasetQuality(RemoteCatalog):
    # -- profiles ---------------------------------------------------------------------------------
    def _set_dataset_profile(
        self, project: str, name: str, version: int, profile_digest: str
    ) -> DatasetVersion:
        body = {"profile_digest": profile_digest}
        path = f"/projects/{segment(project)}/datasets/{segment(name)}/versions/{segment(version)}/profile"
        return _dataset(self._call("PUT", path, body))

    def _suite_path(self, project: str, name: str) -> str:
        return f"/projects/{segment(project)}/datasets/{segment(name)}/suite"

    def _set_dataset_suite(
        self, project: str, name: str, suite: str, on_failure: str
    ) -> DatasetSuite:
        body = {"suite": suite, "on_failure": on_failure}
        return decode(DatasetSuite, self._call("PUT", self._suite_path(project, name), body))

    def _get_dataset_suite(self, project: str, name: str) -> DatasetSuite | None:
        found = self._call("GET", self._suite_path(project, name))
        return None if found is None else decode(DatasetSuite, found)

    def _delete_dataset_suite(self, project: str, name: str) -> None:
        self._call("DELETE", self._suite_path(project, name))
