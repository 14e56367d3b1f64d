"""The remote backend's deployments: the ``Store`` methods spoken over the REST API.

Arguments arrive checked by ``Store``'s front door before anything is sent, so a bad plan is
refused with the same message as in embedded mode; the server checks again, against its registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loopwise.store.codec import decode
from loopwise.store.entities import Deployment, DeploymentChange, TrafficPlan
from loopwise.store.remote.client import RemoteCore, segment

__all__ = ["RemoteDeployments"]


def _deployment(d: Mapping[str, Any]) -> Deployment:
    return decode(Deployment, d)


def _change(d: Mapping[str, Any]) -> DeploymentChange:
    return decode(DeploymentChange, d)


class RemoteDeployments(RemoteCore):
    def _deployment_path(self, project: str, name: str) -> str:
        return f"/projects/{segment(project)}/deployments/{segment(name)}"

    def _create_deployment(
        self, project: str, name: str, model: str, plan: TrafficPlan, reason: str
    ) -> Deployment:
        body = {"name": name, "model": model, "plan": plan.to_json(), "reason": reason}
        return _deployment(self._call("POST", f"/projects/{segment(project)}/deployments", body))

    def _get_deployment(self, project: str, name: str) -> Deployment:
        return _deployment(self._call("GET", self._deployment_path(project, name)))

    def list_deployments(self, project: str) -> list[Deployment]:
        found = self._call("GET", f"/projects/{segment(project)}/deployments")
        return [_deployment(d) for d in found]

    def _set_deployment_plan(
        self, project: str, name: str, plan: TrafficPlan, reason: str, expected_revision: int | None
    ) -> Deployment:
        path = self._deployment_path(project, name) + "/plan"
        body = {"plan": plan.to_json(), "reason": reason, "expected_revision": expected_revision}
        return _deployment(self._call("PUT", path, body))

    def _deployment_history(self, project: str, name: str) -> list[DeploymentChange]:
        found = self._call("GET", self._deployment_path(project, name) + "/history")
        return [_change(c) for c in found]

    def _rollback_deployment(
        self, project: str, name: str, reason: str, to_revision: int | None, expected: int | None
    ) -> Deployment:
        path = self._deployment_path(project, name) + "/rollback"
        body = {
            "reason": reason,
            "to_revision": to_revision,
            "expected_revision": expected,
        }
        return _deployment(self._call("POST", path, body))
