"""The remote backend's alerts: ``Store`` over the REST API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loopwise.store.codec import decode
from loopwise.store.entities import Alert
from loopwise.store.remote.client import RemoteCore, segment

__all__ = ["RemoteAlerts"]


class RemoteAlerts(RemoteCore):
    def _raise_alert(self, project: str, fields: Mapping[str, Any]) -> tuple[Alert, bool]:
        result = self._call("POST", f"/projects/{segment(project)}/alerts", dict(fields))
        return decode(Alert, result["alert"]), bool(result["created"])

    def _list_alerts(
        self, project: str, deployment: str | None, status: str | None, since: int | None, rows: int
    ) -> list[Alert]:
        params = {"deployment": deployment, "status": status, "since_ms": since, "limit": rows}
        found = self._call(
            "GET",
            f"/projects/{segment(project)}/alerts",
            params={k: v for k, v in params.items() if v is not None},
        )
        return [decode(Alert, a) for a in found]

    def _get_alert(self, project: str, alert_id: int) -> Alert:
        return decode(Alert, self._call("GET", f"/projects/{segment(project)}/alerts/{alert_id}"))

    def _resolve_alert(self, project: str, alert_id: int) -> Alert:
        return Alert(
            **self._call("POST", f"/projects/{segment(project)}/alerts/{alert_id}/resolve")
        )
