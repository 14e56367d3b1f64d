"""The remote backend's autopilot policies and decisions: the ``Store`` methods over the REST API.

Arguments arrive checked by ``Store``'s front door, with the messages of embedded mode. The
server returns at most ``MAX_DECISIONS_PER_CALL`` decisions per request; longer reads are
fetched page by page.
"""

from __future__ import annotations

from loopwise.store.checks import CheckedDecision
from loopwise.store.codec import decode
from loopwise.store.entities import AutopilotDecision, AutopilotPolicy
from loopwise.store.remote.client import RemoteCore, segment

__all__ = ["MAX_DECISIONS_PER_CALL", "RemoteAutopilot"]

MAX_DECISIONS_PER_CALL = 1000
"""The most decisions one ``GET …/autopilot/decisions`` returns."""


class RemoteAutopilot(RemoteCore):
    def _autopilot_path(self, project: str, deployment: str) -> str:
        return f"/projects/{segment(project)}/deployments/{segment(deployment)}/autopilot"

    def _set_autopilot_policy(
        self, project: str, deployment: str, text: str, expected_revision: int | None
    ) -> AutopilotPolicy:
        path = self._autopilot_path(project, deployment) + "/policy"
        body = {"text": text, "expected_revision": expected_revision}
        return decode(AutopilotPolicy, self._call("PUT", path, body))

    def _get_autopilot_policy(
        self, project: str, deployment: str, revision: int | None
    ) -> AutopilotPolicy:
        path = self._autopilot_path(project, deployment) + "/policy"
        params = {} if revision is None else {"revision": revision}
        return decode(AutopilotPolicy, self._call("GET", path, params=params))

    def _record_autopilot_decision(
        self, project: str, deployment: str, decision: CheckedDecision
    ) -> AutopilotDecision:
        path = self._autopilot_path(project, deployment) + "/decisions"
        body = {
            "seq": decision.seq,
            "kind": decision.kind,
            "summary": decision.summary,
            "state": decision.state,
            "evidence": decision.evidence,
            "at_ms": decision.at_ms,
        }
        return decode(AutopilotDecision, self._call("POST", path, body))

    def _autopilot_decisions(
        self, project: str, deployment: str, after_seq: int, limit: int | None
    ) -> list[AutopilotDecision]:
        path = self._autopilot_path(project, deployment) + "/decisions"
        found: list[AutopilotDecision] = []
        remaining = limit
        while True:
            want = (
                MAX_DECISIONS_PER_CALL
                if remaining is None
                else min(MAX_DECISIONS_PER_CALL, remaining)
            )
            page = self._call("GET", path, params={"after_seq": after_seq, "limit": want})
            found.extend(decode(AutopilotDecision, d) for d in page)
            if remaining is not None:
                remaining -= len(page)
            if len(page) < want or remaining == 0:
                break
            after_seq = found[-1].seq
        return found

    def _latest_autopilot_decision(self, project: str, deployment: str) -> AutopilotDecision | None:
        path = self._autopilot_path(project, deployment) + "/decisions/latest"
        found = self._call("GET", path)
        return None if found is None else decode(AutopilotDecision, found)
