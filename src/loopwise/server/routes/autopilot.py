"""A deployment's autopilot: its policy and the decisions taken under it (thin, over the store)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from loopwise.errors import ConflictError, InvalidArgumentError, PermissionDeniedError
from loopwise.server.auth import Caller, Permission, caller, permission
from loopwise.server.autopilot_schemas import (
    AutopilotDecisionOut,
    AutopilotPolicyOut,
    RecordDecision,
    SetPolicy,
)
from loopwise.server.routes.common import StoreDep
from loopwise.server.schemas import Count, Id, Text
from loopwise.store import AutopilotDecision, AutopilotPolicy, Store
from loopwise.store.checks import check_policy_text
from loopwise.store.remote.autopilot import MAX_DECISIONS_PER_CALL

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
    from loopwise.autopilot.policy import check_outbound, parse_policy

    policy = parse_policy(check_policy_text(text), check_pipeline=False)
    check_outbound(policy)
    if policy.deployment is not None and policy.deployment != deployment:
        named = repr(policy.deployment[:100])
        raise InvalidArgumentError(
            f"deployment: the policy is for deployment {named}, but it was set on "
            f"{deployment!r}. Set it on {named}, or fix its 'deployment' key.",
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
    """Append decision ``seq``; 409 unless it is the last one's plus 1.

    Decisions are the controller's: its state says what it does next (which retrain to
    finish, which rollout to judge), so recording one needs an admin token for all projects
    (the identity of a remote ``loopwise autopilot run-once``). With write permission a person
    records what a person decides, a ``resume`` of a paused autopilot: its state is the paused
    state resumed, whatever the body says, and its evidence the ``reason`` alone."""
    controller = who.may(Permission.ADMIN) and who.project is None
    if body.kind == "resume" and not controller:
        who.check(Permission.WRITE, project)
        return _resume(project, deployment, body, store)
    if not controller:
        who.check(Permission.WRITE, project)  # the usual refusal for viewers and other projects
        raise PermissionDeniedError(
            f"Recording the autopilot's decision {body.kind[:40]!r} needs an admin token for all "
            "projects: decisions carry the controller's state, which says what it does next. "
            "Run the controller where it reaches the store (loopwise server --autopilot-every, "
            "or loopwise autopilot run-once with an admin token); a person records a resume "
            "(loopwise autopilot resume).",
            role=who.role.value,
            needed=Permission.ADMIN.value,
        )
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


def _resume(project: str, deployment: str, body: RecordDecision, store: Store) -> AutopilotDecision:
    from loopwise import autopilot

    reason = body.evidence.get("reason")
    if not isinstance(reason, str):
        raise InvalidArgumentError(
            "evidence.reason: a resume says why the autopilot may act again, e.g. "
            "{'reason': 'upstream AGEP fix deployed'}.",
            parameter="evidence.reason",
        )
    latest = store.latest_autopilot_decision(project, deployment)
    expected = (latest.seq if latest else 0) + 1
    if body.seq != expected:
        raise ConflictError(
            f"The autopilot of deployment {deployment!r} has decisions up to {expected - 1}, "
            f"so a resume is decision {expected}, not {body.seq}: read the latest decision "
            "and decide again.",
            parameter="seq",
            seq=body.seq,
            expected_seq=expected,
        )
    return autopilot.resume(deployment, reason=reason, store=store, project=project)


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
