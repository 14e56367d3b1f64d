"""The remote backend's outcomes and alerts: the ``Store`` methods spoken over the REST API.

Arguments arrive checked by ``Store``'s front door, so a bad batch is refused whole before
anything is sent. Batches larger than one request may carry are sent in parts of
``MAX_OUTCOMES_PER_CALL``: each part is all or none, and sending the whole batch again is safe
(recording is idempotent).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from loopwise.store.entities import Alert, Outcome, OutcomeReceipt
from loopwise.store.monitoring_checks import CheckedOutcome

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
        return f"/projects/{_q(project)}/deployments/{_q(deployment)}/outcomes"

    def _record_outcomes(
        self,
        project: str,
        deployment: str,
        outcomes: Sequence[CheckedOutcome],
        repeats: int,
        overwrite: bool,
    ) -> OutcomeReceipt:
        path = self._outcomes_path(project, deployment)
        receipt = OutcomeReceipt(0, repeats)
        for start in range(0, max(len(outcomes), 1), MAX_OUTCOMES_PER_CALL):
            part = outcomes[start : start + MAX_OUTCOMES_PER_CALL]
            body = {
                "outcomes": [
                    {"request_id": o.request_id, "value": o.value, "timestamp_ms": o.timestamp_ms}
                    for o in part
                ],
                "overwrite": overwrite,
            }
            receipt = receipt + OutcomeReceipt(**self._call("POST", path, body))
        return receipt

    def _get_outcomes(
        self, project: str, deployment: str, request_ids: Sequence[str]
    ) -> dict[str, Outcome]:
        path = self._outcomes_path(project, deployment) + "/query"
        found: dict[str, Outcome] = {}
        for start in range(0, len(request_ids), MAX_OUTCOMES_PER_CALL):
            body = {"request_ids": request_ids[start : start + MAX_OUTCOMES_PER_CALL]}
            found.update((o["request_id"], Outcome(**o)) for o in self._call("POST", path, body))
        return found

    def _raise_alert(self, project: str, fields: Mapping[str, Any]) -> tuple[Alert, bool]:
        result = self._call("POST", f"/projects/{_q(project)}/alerts", dict(fields))
        return Alert(**result["alert"]), bool(result["created"])

    def _list_alerts(
        self,
        project: str,
        deployment: str | None,
        status: str | None,
        since_ms: int | None,
        limit: int,
    ) -> list[Alert]:
        params = {"deployment": deployment, "status": status, "since_ms": since_ms, "limit": limit}
        found = self._call(
            "GET",
            f"/projects/{_q(project)}/alerts",
            params={k: v for k, v in params.items() if v is not None},
        )
        return [Alert(**a) for a in found]

    def _get_alert(self, project: str, alert_id: int) -> Alert:
        return Alert(**self._call("GET", f"/projects/{_q(project)}/alerts/{alert_id}"))

    def _resolve_alert(self, project: str, alert_id: int) -> Alert:
        return Alert(**self._call("POST", f"/projects/{_q(project)}/alerts/{alert_id}/resolve"))
