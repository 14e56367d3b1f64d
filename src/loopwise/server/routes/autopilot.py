"""A deployment's autopilot: its policy and the decisions taken under it (thin, over the store)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from loopwise.errors import InvalidArgumentError
from loopwise.server.auth import Caller, Permission, caller, permission
from loopwise.server.autopilot_schemas import (
    AutopilotDecisionOut,
    AutopilotPolicyOut,
    RecordDecision,
    SetPolicy,
)
from loopwise.server.routes.common import StoreDep
from loopwise.server.schemas import Count, Id, Text
from loopwise.store import AutopilotDecision, AutopilotPolicy
from loopwise.store.remote_autopilot import MAX_DECISIONS_PER_CALL
from loopwise.store.validate import check_policy_text

router = APIRouter()
CallerDep = Annotated[Caller, Depends(caller)]
READ = permission(Permission.READ)
WRITE = permission(Permission.WRITE)
AUTOPILOT = "/projects/{project}/deployments/{deployment}/autopilot"


def _check_policy(deployment: str, text: str) -> None:
    """Refuse a policy the autopilot could not run, before it replaces a good one.

    The pipeline it names is not imported here: that would run a client's code on the server
    (the autopilot checks it where it runs, before setting the policy).
    """
    from loopwise.autopilot.policy import parse_policy

    policy = parse_policy(check_policy_text(text), check_pipeline=False)
    if policy.deployment is not None and policy.deployment != deployment:
        raise InvalidArgumentError(
            f"deployment: the policy is for deployment {policy.deployment!r}, but it was set on "
            f"{deployment!r}. Set it on {policy.deployment!r}, or fix its 'deployment' key.",
            parameter="deployment",
        )


@router.put(
    AUTOPILOT + "/policy",
    response_model=AutopilotPolicyOut,
    tags=["autopilot"],
    openapi_extra=WRITE,
)
def set_autopilot_policy(
    project: Text, deployment: Text, body: SetPolicy, store: StoreDep, who: CallerDep
) -> AutopilotPolicy:
    """Store the policy as the next revision, once it parses (the same text changes nothing);
    400 naming the field of an invalid policy, 409 when ``expected_revision`` is stale."""
    who.check(Permission.WRITE, project)
    _check_policy(deployment, body.text)
    return store.set_autopilot_policy(project, deployment, body.text, body.expected_revision)


@router.get(
    AUTOPILOT + "/policy", response_model=AutopilotPolicyOut, tags=["autopilot"], openapi_extra=READ
)
def get_autopilot_policy(
    project: Text,
    deployment: Text,
    store: StoreDep,
    who: CallerDep,
    revision: Annotated[Id | None, Query()] = None,
) -> AutopilotPolicy:
    """The current policy, or revision ``revision``; 404 when there is none."""
    who.check(Permission.READ, project)
    return store.get_autopilot_policy(project, deployment, revision)


@router.post(
    AUTOPILOT + "/decisions",
    response_model=AutopilotDecisionOut,
    tags=["autopilot"],
    openapi_extra=WRITE,
)
def record_autopilot_decision(
    project: Text, deployment: Text, body: RecordDecision, store: StoreDep, who: CallerDep
) -> AutopilotDecision:
    """Append decision ``seq``; 409 unless it is the last one's plus 1."""
    who.check(Permission.WRITE, project)
    return store.record_autopilot_decision(
        project,
        deployment,
        body.seq,
        body.kind,
        body.summary,
        body.state,
        body.evidence,
        body.at_ms,
    )


@router.get(
    AUTOPILOT + "/decisions",
    response_model=list[AutopilotDecisionOut],
    tags=["autopilot"],
    openapi_extra=READ,
)
def autopilot_decisions(
    project: Text,
    deployment: Text,
    store: StoreDep,
    who: CallerDep,
    after_seq: Annotated[Count, Query()] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_DECISIONS_PER_CALL)] = MAX_DECISIONS_PER_CALL,
) -> list[AutopilotDecision]:
    """Decisions after ``after_seq``, oldest first, at most ``limit``: ask again from the last
    one's seq for more."""
    who.check(Permission.READ, project)
    return store.autopilot_decisions(project, deployment, after_seq, limit)


@router.get(
    AUTOPILOT + "/decisions/latest",
    response_model=AutopilotDecisionOut | None,
    tags=["autopilot"],
    openapi_extra=READ,
)
def latest_autopilot_decision(
    project: Text, deployment: Text, store: StoreDep, who: CallerDep
) -> AutopilotDecision | None:
    """The decision with the highest seq, or ``null`` when there is none yet."""
    who.check(Permission.READ, project)
    return store.latest_autopilot_decision(project, deployment)
