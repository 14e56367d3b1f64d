"""The remote backend's outcomes: ``Store`` over the REST API.

Batches larger than one request may carry are sent in parts of ``MAX_OUTCOMES_PER_CALL``: each
part is all or none, and sending the whole batch again is safe (recording is idempotent).
"""

from __future__ import annotations

from collections.abc import Sequence

from loopwise.store.checks import CheckedOutcome
from loopwise.store.codec import decode
from loopwise.store.entities import Outcome, OutcomeReceipt
from loopwise.store.remote.client import RemoteCore, segment

__all__ = ["MAX_OUTCOMES_PER_CALL", "RemoteOutcomes"]

MAX_OUTCOMES_PER_CALL = 10_000  # as loopwise.server.monitoring_schemas says


class RemoteOutcomes(RemoteCore):
    def _outcomes_path(self, project: str, deployment: str) -> str:
        return f"/projects/{segment(project)}/deployments/{segment(deployment)}/outcomes"

    def _record_outcomes(
        self, project: str, deployment: str, outcomes: Sequence[CheckedOutcome], overwrite: bool
    ) -> OutcomeReceipt:
        path = self._outcomes_path(project, deployment)
        receipt = OutcomeReceipt(0, 0)
        for start in range(0, max(len(outcomes), 1), MAX_OUTCOMES_PER_CALL):
            part = outcomes[start : start + MAX_OUTCOMES_PER_CALL]
            body = {
                "outcomes": [
                    {"request_id": o.request_id, "value": o.value, "timestamp_ms": o.timestamp_ms}
                    for o in part
                ],
                "overwrite": overwrite,
            }
            receipt = receipt + decode(OutcomeReceipt, self._call("POST", path, body))
        return receipt

    def _get_outcomes(
        self, project: str, deployment: str, request_ids: Sequence[str]
    ) -> dict[str, Outcome]:
        path = self._outcomes_path(project, deployment) + "/query"
        found: dict[str, Outcome] = {}
        for start in range(0, len(request_ids), MAX_OUTCOMES_PER_CALL):
            body = {"request_ids": request_ids[start : start + MAX_OUTCOMES_PER_CALL]}
            found.update(
                (o["request_id"], decode(Outcome, o)) for o in self._call("POST", path, body)
            )
        return found
