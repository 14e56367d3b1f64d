"""The store interface's operations on what is served: deployments and their traffic plans,
the autopilot's policies and decisions, the prediction log, outcomes and alerts.

``Store`` (``store/base.py``) inherits them; each is a front door as described there: checks
once, then a protected hook the backends implement.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from loopwise.store.checks import (
    CheckedDecision,
    CheckedOutcome,
    check_alert,
    check_alert_id,
    check_alert_query,
    check_autopilot_decision,
    check_decision_page,
    check_expected_policy_revision,
    check_name,
    check_outcomes,
    check_overwrite,
    check_policy_text,
    check_prediction_segment,
    check_reason,
    check_request_ids,
    check_revision,
    check_spool_id,
    check_time_range,
    check_traffic_plan,
    check_upto_seq,
)
from loopwise.store.entities import (
    Alert,
    AutopilotDecision,
    AutopilotPolicy,
    Deployment,
    DeploymentChange,
    Outcome,
    OutcomeReceipt,
    PredictionSegment,
    TrafficPlan,
)

__all__ = ["ServedOperations"]


class ServedOperations(ABC):
    """Deployments, the autopilot, the prediction log, outcomes and alerts (mixed into Store)."""

    # -- deployments: a model served through a traffic plan ------------------------------------
    # Plans are checked with ``validate.check_traffic_plan`` and against the registry: every
    # version they name must exist. Each change is a new revision in the deployment's history
    # and a record in the audit log. ``expected_revision`` makes a change conditional (optimistic
    # concurrency): when the deployment is no longer at that revision, it is a ConflictError
    # and nothing changes.
    def create_deployment(
        self, project: str, name: str, model: str, plan: TrafficPlan, reason: str = ""
    ) -> Deployment:
        """A new deployment of ``model`` at revision 1; ConflictError if the name is taken."""
        check_name(name, "deployment")
        check_name(model, "model")
        plan = check_traffic_plan(plan)
        return self._create_deployment(
            project, name, model, plan, check_reason(reason, required=False)
        )

    @abstractmethod
    def _create_deployment(
        self, project: str, name: str, model: str, plan: TrafficPlan, reason: str
    ) -> Deployment: ...

    def get_deployment(self, project: str, name: str) -> Deployment:
        check_name(name, "deployment")
        return self._get_deployment(project, name)

    @abstractmethod
    def _get_deployment(self, project: str, name: str) -> Deployment: ...

    @abstractmethod
    def list_deployments(self, project: str) -> list[Deployment]:
        """The project's deployments by name."""

    def set_deployment_plan(
        self,
        project: str,
        name: str,
        plan: TrafficPlan,
        reason: str,
        expected_revision: int | None = None,
    ) -> Deployment:
        """Follow a new plan from the next revision on. A plan equal to the current one changes
        nothing (the same revision comes back)."""
        check_name(name, "deployment")
        plan = check_traffic_plan(plan)
        reason = check_reason(reason)
        expected = check_revision(expected_revision, "expected_revision")
        return self._set_deployment_plan(project, name, plan, reason, expected)

    @abstractmethod
    def _set_deployment_plan(
        self, project: str, name: str, plan: TrafficPlan, reason: str, expected_revision: int | None
    ) -> Deployment: ...

    def deployment_history(self, project: str, name: str) -> list[DeploymentChange]:
        """Every revision of the deployment, oldest first."""
        check_name(name, "deployment")
        return self._deployment_history(project, name)

    @abstractmethod
    def _deployment_history(self, project: str, name: str) -> list[DeploymentChange]: ...

    def rollback_deployment(
        self,
        project: str,
        name: str,
        reason: str,
        to_revision: int | None = None,
        expected_revision: int | None = None,
    ) -> Deployment:
        """Restore an earlier revision's plan, recorded as a new revision.

        Without ``to_revision``: the plan in force before the current plan was first set, so
        that rolling back twice goes two plans back (never forward again to the plan just
        rolled back from); a ConflictError when the current plan is the first. Restoring the
        plan that is already current changes nothing.
        """
        check_name(name, "deployment")
        reason = check_reason(reason)
        wanted = check_revision(to_revision, "to_revision")
        expected = check_revision(expected_revision, "expected_revision")
        return self._rollback_deployment(project, name, reason, wanted, expected)

    @abstractmethod
    def _rollback_deployment(
        self, project: str, name: str, reason: str, to_revision: int | None, expected: int | None
    ) -> Deployment: ...

    # -- the autopilot: each deployment's policy and the decisions taken under it ----------------
    # Both belong to an existing deployment (NotFoundError otherwise) and every change is
    # audited. Decisions are numbered 1, 2, 3 … per deployment by the controller: recording
    # the next number is how it claims the step, so two controllers that decided from the same
    # state cannot both record (ConflictError for the second, even at the same moment).
    def set_autopilot_policy(
        self, project: str, deployment: str, text: str, expected_revision: int | None = None
    ) -> AutopilotPolicy:
        """Store the deployment's next policy revision (the YAML text exactly as given).

        Text equal to the current revision's changes nothing (that revision comes back).
        ``expected_revision``: a ConflictError, and no change, unless the current revision
        (0 when there is none) is this one.
        """
        check_name(deployment, "deployment")
        text = check_policy_text(text)
        expected = check_expected_policy_revision(expected_revision)
        return self._set_autopilot_policy(project, deployment, text, expected)

    @abstractmethod
    def _set_autopilot_policy(
        self, project: str, deployment: str, text: str, expected_revision: int | None
    ) -> AutopilotPolicy: ...

    def get_autopilot_policy(
        self, project: str, deployment: str, revision: int | None = None
    ) -> AutopilotPolicy:
        """The current policy (or revision ``revision``); NotFoundError when there is none."""
        check_name(deployment, "deployment")
        return self._get_autopilot_policy(project, deployment, check_revision(revision, "revision"))

    @abstractmethod
    def _get_autopilot_policy(
        self, project: str, deployment: str, revision: int | None
    ) -> AutopilotPolicy: ...

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
        """Append decision ``seq``, which must be the last one's plus 1 (1 for the first):
        otherwise a ConflictError and nothing is stored."""
        check_name(deployment, "deployment")
        checked = check_autopilot_decision(seq, kind, summary, state, evidence, at_ms)
        return self._record_autopilot_decision(project, deployment, checked)

    @abstractmethod
    def _record_autopilot_decision(
        self, project: str, deployment: str, decision: CheckedDecision
    ) -> AutopilotDecision: ...

    def autopilot_decisions(
        self, project: str, deployment: str, after_seq: int = 0, limit: int | None = None
    ) -> list[AutopilotDecision]:
        """Decisions with ``seq > after_seq``, oldest first, at most ``limit`` (the first)."""
        check_name(deployment, "deployment")
        after, most = check_decision_page(after_seq, limit)
        return self._autopilot_decisions(project, deployment, after, most)

    @abstractmethod
    def _autopilot_decisions(
        self, project: str, deployment: str, after_seq: int, limit: int | None
    ) -> list[AutopilotDecision]: ...

    def latest_autopilot_decision(self, project: str, deployment: str) -> AutopilotDecision | None:
        """The decision with the highest ``seq``, or None when there is none yet."""
        check_name(deployment, "deployment")
        return self._latest_autopilot_decision(project, deployment)

    @abstractmethod
    def _latest_autopilot_decision(
        self, project: str, deployment: str
    ) -> AutopilotDecision | None: ...

    # -- prediction log ---------------------------------------------------------------------------
    # Predictions are Parquet blobs in ``artifacts``, indexed by these two methods; a
    # prediction spool (``store/predictions.py``) writes and reads them.
    def add_prediction_segments(
        self,
        segments: Sequence[PredictionSegment],
        spool_id: str | None = None,
        upto_seq: int = 0,
    ) -> None:
        """Index segments whose Parquet bytes are already in ``artifacts``, all or none.

        With ``spool_id``, also record atomically that the spool reached ``upto_seq``; a batch
        whose ``upto_seq`` that spool has already reached is ignored (a replay), so each
        spooled prediction is indexed once.
        """
        checked = [check_prediction_segment(s) for s in segments]
        spool = None if spool_id is None else check_spool_id(spool_id)
        self._add_prediction_segments(checked, spool, check_upto_seq(upto_seq))

    @abstractmethod
    def _add_prediction_segments(
        self, segments: Sequence[PredictionSegment], spool_id: str | None, upto_seq: int
    ) -> None: ...

    def list_prediction_segments(
        self,
        project: str,
        deployment: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> list[PredictionSegment]:
        """Segments that may hold rows with ``start_ms <= timestamp_ms < end_ms``, oldest first.

        ``deployment`` None means every deployment of the project.
        """
        check_name(project, "project")
        if deployment is not None:
            check_name(deployment, "deployment")
        start, end = check_time_range(start_ms, end_ms)
        return self._list_prediction_segments(project, deployment, start, end)

    @abstractmethod
    def _list_prediction_segments(
        self, project: str, deployment: str | None, start_ms: int | None, end_ms: int | None
    ) -> list[PredictionSegment]: ...

    # -- outcomes: ground truth that arrives after the prediction -------------------------------
    def record_outcomes(
        self,
        project: str,
        deployment: str,
        outcomes: Sequence[Outcome | tuple[Any, ...]],
        overwrite: bool = False,
    ) -> OutcomeReceipt:
        """Record each prediction row's outcome once, all or none; safe to send again.

        ``outcomes``: ``Outcome`` or ``(request_id, value[, timestamp_ms])``. An id recorded
        before with the same value is a duplicate (nothing changes); with a different value a
        conflict, left as it was unless ``overwrite``. Ids need no logged prediction (yet).
        """
        check_name(deployment, "deployment")
        checked = check_outcomes(outcomes)
        repeats = len(outcomes) - len(checked)  # the same outcome twice in the batch
        receipt = self._record_outcomes(project, deployment, checked, check_overwrite(overwrite))
        return OutcomeReceipt(0, repeats) + receipt

    @abstractmethod
    def _record_outcomes(
        self, project: str, deployment: str, outcomes: Sequence[CheckedOutcome], overwrite: bool
    ) -> OutcomeReceipt:
        """``outcomes``: checked, without repeats (the front door counts those as duplicates)."""

    def get_outcomes(
        self, project: str, deployment: str, request_ids: Sequence[str]
    ) -> dict[str, Outcome]:
        """The recorded outcomes of these prediction rows, by request id (absent: none yet)."""
        check_name(deployment, "deployment")
        ids = list(dict.fromkeys(check_request_ids(request_ids)))
        return self._get_outcomes(project, deployment, ids)

    @abstractmethod
    def _get_outcomes(
        self, project: str, deployment: str, request_ids: Sequence[str]
    ) -> dict[str, Outcome]:
        """``request_ids``: checked, without repeats."""

    # -- alerts ---------------------------------------------------------------------------------
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
        """Open an alert, or, while one with the same fingerprint is open, update that one.

        Returns ``(alert, created)``. A repeat adds one to ``occurrences`` and takes the new
        severity, message, details, window and ``last_seen_ms``. Concurrent raises of one
        fingerprint make one alert.
        """
        fields = check_alert(
            deployment=deployment,
            rule=rule,
            severity=severity,
            fingerprint=fingerprint,
            message=message,
            details=details,
            window_start_ms=window_start_ms,
            window_end_ms=window_end_ms,
        )
        return self._raise_alert(project, fields)

    @abstractmethod
    def _raise_alert(self, project: str, fields: Mapping[str, Any]) -> tuple[Alert, bool]:
        """``fields``: the alert's columns as ``check_alert`` returns them."""

    def list_alerts(
        self,
        project: str,
        *,
        deployment: str | None = None,
        status: str | None = None,
        since_ms: int | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Alerts, most recently seen first; ``status`` None means open and resolved."""
        deployment, status, since_ms, limit = check_alert_query(deployment, status, since_ms, limit)
        return self._list_alerts(project, deployment, status, since_ms, limit)

    @abstractmethod
    def _list_alerts(
        self, project: str, deployment: str | None, status: str | None, since: int | None, rows: int
    ) -> list[Alert]: ...

    def get_alert(self, project: str, alert_id: int) -> Alert:
        check_name(project, "project")
        return self._get_alert(project, check_alert_id(alert_id))

    @abstractmethod
    def _get_alert(self, project: str, alert_id: int) -> Alert: ...

    def resolve_alert(self, project: str, alert_id: int) -> Alert:
        """Close an alert (resolving a resolved one changes nothing); the next raise of its
        fingerprint opens a new one."""
        return self._resolve_alert(project, check_alert_id(alert_id))

    @abstractmethod
    def _resolve_alert(self, project: str, alert_id: int) -> Alert: ...
