"""The remote backend's autopilot policies and decisions: the ``Store`` methods over the REST API.

Arguments are checked here before anything is sent, with the messages of embedded mode. The
server returns at most ``MAX_DECISIONS_PER_CALL`` decisions per request; longer reads are
fetched page by page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from loopwise.store.autopilot_checks import (
    check_autopilot_decision,
    check_decision_page,
    check_expected_policy_revision,
    check_policy_text,
)
from loopwise.store.entities import AutopilotDecision, AutopilotPolicy
from loopwise.store.validate import check_name, check_revision

__all__ = ["MAX_DECISIONS_PER_CALL", "RemoteAutopilot"]

MAX_DECISIONS_PER_CALL = 1000
"""The most decisions one ``GET …/autopilot/decisions`` returns."""


def _q(segment: str | int) -> str:
    return quote(str(segment), safe="")


class RemoteAutopilot:
    """Mixed into ``RemoteStore``, which provides ``_call``."""

    def _call(
        self, method: str, path: str, json: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        raise NotImplementedError

    def _autopilot_path(self, project: str, deployment: str) -> str:
        check_name(deployment, "deployment")
        return f"/projects/{_q(project)}/deployments/{_q(deployment)}/autopilot"

    def set_autopilot_policy(
        self, project: str, deployment: str, text: str, expected_revision: int | None = None
    ) -> AutopilotPolicy:
        path = self._autopilot_path(project, deployment) + "/policy"
        body = {
            "text": check_policy_text(text),
            "expected_revision": check_expected_policy_revision(expected_revision),
        }
        return AutopilotPolicy(**self._call("PUT", path, body))

    def get_autopilot_policy(
        self, project: str, deployment: str, revision: int | None = None
    ) -> AutopilotPolicy:
        path = self._autopilot_path(project, deployment) + "/policy"
        wanted = check_revision(revision, "revision")
        params = {} if wanted is None else {"revision": wanted}
        return AutopilotPolicy(**self._call("GET", path, params=params))

    def record_autopilot_decision(
        self,
        project: str,
        deployment: str,
        seq: int,
        kind: str,
        summary: str,
        state: Mapping[str, Any],
        evidence: Mapping[str, Any],
        at_ms: int,
    ) -> AutopilotDecision:
        path = self._autopilot_path(project, deployment) + "/decisions"
        checked = check_autopilot_decision(seq, kind, summary, state, evidence, at_ms)
        body = {
            "seq": checked.seq,
            "kind": checked.kind,
            "summary": checked.summary,
            "state": checked.state,
            "evidence": checked.evidence,
            "at_ms": checked.at_ms,
        }
        return AutopilotDecision(**self._call("POST", path, body))

    def autopilot_decisions(
        self, project: str, deployment: str, after_seq: int = 0, limit: int | None = None
    ) -> list[AutopilotDecision]:
        path = self._autopilot_path(project, deployment) + "/decisions"
        after, most = check_decision_page(after_seq, limit)
        found: list[AutopilotDecision] = []
        remaining = most
        while True:
            want = (
                MAX_DECISIONS_PER_CALL
                if remaining is None
                else min(MAX_DECISIONS_PER_CALL, remaining)
            )
            page = self._call("GET", path, params={"after_seq": after, "limit": want})
            found.extend(AutopilotDecision(**d) for d in page)
            if remaining is not None:
                remaining -= len(page)
            if len(page) < want or remaining == 0:
                break
            after = found[-1].seq
        return found

    def latest_autopilot_decision(self, project: str, deployment: str) -> AutopilotDecision | None:
        path = self._autopilot_path(project, deployment) + "/decisions/latest"
        found = self._call("GET", path)
        return None if found is None else AutopilotDecision(**found)
