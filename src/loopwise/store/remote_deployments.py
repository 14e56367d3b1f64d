"""The remote backend's deployments: the ``Store`` methods spoken over the REST API.

Arguments are checked here before anything is sent, so a bad plan is refused with the same
message as in embedded mode; the server checks again, against its registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from loopwise.store.entities import Deployment, DeploymentChange, TrafficPlan
from loopwise.store.validate import (
    check_name,
    check_reason,
    check_revision,
    check_traffic_plan,
)

__all__ = ["RemoteDeployments"]


def _q(segment: str | int) -> str:
    return quote(str(segment), safe="")


def _deployment(d: Mapping[str, Any]) -> Deployment:
    return Deployment(**{**d, "plan": TrafficPlan.from_json(d["plan"])})


def _change(d: Mapping[str, Any]) -> DeploymentChange:
    return DeploymentChange(**{**d, "plan": TrafficPlan.from_json(d["plan"])})


class RemoteDeployments:
    """Mixed into ``RemoteStore``, which provides ``_call``."""

    def _call(
        self, method: str, path: str, json: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        raise NotImplementedError

    def _deployment_path(self, project: str, name: str) -> str:
        check_name(name, "deployment")
        return f"/projects/{_q(project)}/deployments/{_q(name)}"

    def create_deployment(
        self, project: str, name: str, model: str, plan: TrafficPlan, reason: str = ""
    ) -> Deployment:
        body = {
            "name": check_name(name, "deployment"),
            "model": check_name(model, "model"),
            "plan": check_traffic_plan(plan).to_json(),
            "reason": check_reason(reason, required=False),
        }
        return _deployment(self._call("POST", f"/projects/{_q(project)}/deployments", body))

    def get_deployment(self, project: str, name: str) -> Deployment:
        return _deployment(self._call("GET", self._deployment_path(project, name)))

    def list_deployments(self, project: str) -> list[Deployment]:
        found = self._call("GET", f"/projects/{_q(project)}/deployments")
        return [_deployment(d) for d in found]

    def set_deployment_plan(
        self,
        project: str,
        name: str,
        plan: TrafficPlan,
        reason: str,
        expected_revision: int | None = None,
    ) -> Deployment:
        path = self._deployment_path(project, name) + "/plan"
        body = {
            "plan": check_traffic_plan(plan).to_json(),
            "reason": check_reason(reason),
            "expected_revision": check_revision(expected_revision, "expected_revision"),
        }
        return _deployment(self._call("PUT", path, body))

    def deployment_history(self, project: str, name: str) -> list[DeploymentChange]:
        found = self._call("GET", self._deployment_path(project, name) + "/history")
        return [_change(c) for c in found]

    def rollback_deployment(
        self,
        project: str,
        name: str,
        reason: str,
        to_revision: int | None = None,
        expected_revision: int | None = None,
    ) -> Deployment:
        path = self._deployment_path(project, name) + "/rollback"
        body = {
            "reason": check_reason(reason),
            "to_revision": check_revision(to_revision, "to_revision"),
            "expected_revision": check_revision(expected_revision, "expected_revision"),
        }
        return _deployment(self._call("POST", path, body))
