"""The remote backend's outcomes and alerts: the ``Store`` methods spoken over the REST API.

Arguments are checked here before anything is sent, so a bad batch is refused whole. Batches
larger than one request may carry are sent in parts of ``MAX_OUTCOMES_PER_CALL``: each part is
all or none, and sending the whole batch again is safe (recording is idempotent).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from loopwise.store.entities import Alert, Outcome, OutcomeReceipt
from loopwise.store.monitoring_checks import (
    check_alert,
    check_alert_id,
    check_alert_query,
    check_outcomes,
    check_overwrite,
    check_request_ids,
)
from loopwise.store.validate import check_name

__all__ = ["MAX_OUTCOMES_PER_CALL", "RemoteMonitoring"]

MAX_OUTCOMES_PER_CALL = 10_000  # as loopwise.server.monitoring_schemas says


def _q(segment: str | int) -> str:
    return quote(str(segment), safe="")


class RemoteMonitoring:
    """Mixed into ``RemoteStore``, which provides ``_call``."""

    def _call(
        self, method: str, path: str, json: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        raise NotImplementedError

    def _outcomes_path(self, project: str, deployment: str) -> str:
        check_name(deployment, "deployment")
        return f"/projects/{_q(project)}/deployments/{_q(deployment)}/outcomes"

    def record_outcomes(
        self,
        project: str,
        deployment: str,
        outcomes: Sequence[Outcome | tuple[Any, ...]],
        overwrite: bool = False,
    ) -> OutcomeReceipt:
        path = self._outcomes_path(project, deployment)
        checked = check_outcomes(outcomes)
        receipt = OutcomeReceipt(0, len(outcomes) - len(checked))  # repeats within the batch
        for start in range(0, max(len(checked), 1), MAX_OUTCOMES_PER_CALL):
            part = checked[start : start + MAX_OUTCOMES_PER_CALL]
            body = {
                "outcomes": [
                    {"request_id": o.request_id, "value": o.value, "timestamp_ms": o.timestamp_ms}
                    for o in part
                ],
                "overwrite": check_overwrite(overwrite),
            }
            receipt = receipt + OutcomeReceipt(**self._call("POST", path, body))
        return receipt

    def get_outcomes(
        self, project: str, deployment: str, request_ids: Sequence[str]
    ) -> dict[str, Outcome]:
        path = self._outcomes_path(project, deployment) + "/query"
        ids = list(dict.fromkeys(check_request_ids(request_ids)))
        found: dict[str, Outcome] = {}
        for start in range(0, len(ids), MAX_OUTCOMES_PER_CALL):
            body = {"request_ids": ids[start : start + MAX_OUTCOMES_PER_CALL]}
            found.update((o["request_id"], Outcome(**o)) for o in self._call("POST", path, body))
        return found

    def raise_alert(
        self,
        project: str,
        *,
        deployment: str | None,
        rule: str,
        severity: str,
        fingerprint: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        window_start_ms: int | None = None,
        window_end_ms: int | None = None,
    ) -> tuple[Alert, bool]:
        body = check_alert(
            deployment=deployment,
            rule=rule,
            severity=severity,
            fingerprint=fingerprint,
            message=message,
            details=details,
            window_start_ms=window_start_ms,
            window_end_ms=window_end_ms,
        )
        result = self._call("POST", f"/projects/{_q(project)}/alerts", body)
        return Alert(**result["alert"]), bool(result["created"])

    def list_alerts(
        self,
        project: str,
        *,
        deployment: str | None = None,
        status: str | None = None,
        since_ms: int | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        deployment, status, since, rows = check_alert_query(deployment, status, since_ms, limit)
        params = {"deployment": deployment, "status": status, "since_ms": since, "limit": rows}
        found = self._call(
            "GET",
            f"/projects/{_q(project)}/alerts",
            params={k: v for k, v in params.items() if v is not None},
        )
        return [Alert(**a) for a in found]

    def get_alert(self, project: str, alert_id: int) -> Alert:
        path = f"/projects/{_q(project)}/alerts/{check_alert_id(alert_id)}"
        return Alert(**self._call("GET", path))

    def resolve_alert(self, project: str, alert_id: int) -> Alert:
        path = f"/projects/{_q(project)}/alerts/{check_alert_id(alert_id)}/resolve"
        return Alert(**self._call("POST", path))
