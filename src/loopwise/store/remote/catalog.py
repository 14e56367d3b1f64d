"""The remote backend's dataset versions, lineage and model registry: ``Store`` over the REST API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loopwise.store.checks import check_alias
from loopwise.store.codec import decode
from loopwise.store.entities import DatasetVersion, ModelVersion, RegisteredModel
from loopwise.store.remote.client import RemoteCore, segment

__all__ = ["RemoteCatalog"]


def _dataset(d: Mapping[str, Any]) -> DatasetVersion:
    return decode(DatasetVersion, d)


def _model_version(d: Mapping[str, Any]) -> ModelVersion:
    return decode(ModelVersion, d)


class RemoteCatalog(RemoteCore):
    # -- datasets ---------------------------------------------------------------------------------
    def _create_dataset_version(
        self, project: str, name: str, fields: Mapping[str, Any]
    ) -> tuple[DatasetVersion, bool]:
        path = f"/projects/{segment(project)}/datasets/{segment(name)}/versions"
        result = self._call("POST", path, dict(fields))
        return _dataset(result["version"]), bool(result["created"])

    def get_dataset_version(
        self, project: str, name: str, version: int | None = None
    ) -> DatasetVersion:
        where = "latest" if version is None else f"versions/{segment(version)}"
        return _dataset(
            self._call("GET", f"/projects/{segment(project)}/datasets/{segment(name)}/{where}")
        )

    def list_dataset_versions(self, project: str, name: str | None = None) -> list[DatasetVersion]:
        params = {"name": name} if name is not None else None
        rows = self._call("GET", f"/projects/{segment(project)}/datasets", params=params)
        return [_dataset(r) for r in rows]

    def _link_dataset(self, run_id: str, dataset_version_id: int, role: str) -> None:
        body = {"dataset_version_id": dataset_version_id, "role": role}
        self._call("POST", f"/runs/{segment(run_id)}/datasets", body)

    def run_datasets(self, run_id: str) -> list[DatasetVersion]:
        return [_dataset(r) for r in self._call("GET", f"/runs/{segment(run_id)}/datasets")]

    def dataset_runs(self, dataset_version_id: int) -> list[str]:
        return list(self._call("GET", f"/dataset-versions/{segment(dataset_version_id)}/runs"))

    # -- registry ---------------------------------------------------------------------------------
    def _create_model_version(
        self, project: str, name: str, fields: Mapping[str, Any]
    ) -> ModelVersion:
        if fields["run_id"] is not None:
            self.flush()  # the version's metrics snapshot must include what the run just logged
        path = f"/projects/{segment(project)}/models/{segment(name)}/versions"
        return _model_version(self._call("POST", path, dict(fields)))

    def get_model_version(self, project: str, name: str, version: int) -> ModelVersion:
        path = f"/projects/{segment(project)}/models/{segment(name)}/versions/{segment(version)}"
        return _model_version(self._call("GET", path))

    def list_models(self, project: str) -> list[RegisteredModel]:
        return [
            decode(RegisteredModel, m)
            for m in self._call("GET", f"/projects/{segment(project)}/models")
        ]

    def list_model_versions(self, project: str, name: str) -> list[ModelVersion]:
        path = f"/projects/{segment(project)}/models/{segment(name)}/versions"
        return [_model_version(v) for v in self._call("GET", path)]

    def _alias_path(self, project: str, name: str, alias: str) -> str:
        return f"/projects/{segment(project)}/models/{segment(name)}/aliases/{segment(alias)}"

    def _set_alias(self, project: str, name: str, alias: str, version: int) -> int | None:
        result = self._call("PUT", self._alias_path(project, name, alias), {"version": version})
        previous = result["previous"]
        return None if previous is None else int(previous)

    # Only set_alias checks the alias in the front door (the SQL store answers an unknown one
    # with NotFoundError); here it must also make a path segment, so these check it too.
    def delete_alias(self, project: str, name: str, alias: str) -> int:
        check_alias(alias)
        return int(self._call("DELETE", self._alias_path(project, name, alias))["version"])

    def resolve_alias(self, project: str, name: str, alias: str) -> int:
        check_alias(alias)
        return int(self._call("GET", self._alias_path(project, name, alias))["version"])
