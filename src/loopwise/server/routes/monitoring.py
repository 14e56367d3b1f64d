"""Outcomes (delayed labels) and alerts: thin calls to the store."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from loopwise.server.auth import Caller, Permission, caller, permission
from loopwise.server.monitoring_schemas import (
    AlertOut,
    AlertRaised,
    OutcomeOut,
    OutcomeQuery,
    OutcomeReceiptOut,
    RaiseAlert,
    RecordOutcomes,
)
from loopwise.server.routes.common import StoreDep
from loopwise.server.schemas import Count, Id, Text
from loopwise.store import Alert, Outcome, OutcomeReceipt

router = APIRouter()
CallerDep = Annotated[Caller, Depends(caller)]
READ = permission(Permission.READ)
WRITE = permission(Permission.WRITE)
OUTCOMES = "/projects/{project}/deployments/{deployment}/outcomes"


@router.post(OUTCOMES, response_model=OutcomeReceiptOut, tags=["monitoring"], openapi_extra=WRITE)
def record_outcomes(
    project: Text, deployment: Text, body: RecordOutcomes, store: StoreDep, who: CallerDep
) -> OutcomeReceipt:
    """Record ground truth for logged prediction rows; sending a batch again is safe."""
    who.check(Permission.WRITE, project)
    outcomes = [Outcome(o.request_id, o.value, o.timestamp_ms) for o in body.outcomes]
    return store.record_outcomes(project, deployment, outcomes, body.overwrite)


@router.post(
    OUTCOMES + "/query",
    response_model=list[OutcomeOut],
    tags=["monitoring"],
    openapi_extra=READ,
)
def get_outcomes(
    project: Text, deployment: Text, body: OutcomeQuery, store: StoreDep, who: CallerDep
) -> list[Outcome]:
    """The recorded outcomes of these prediction rows (ids without one are left out)."""
    who.check(Permission.READ, project)
    return list(store.get_outcomes(project, deployment, body.request_ids).values())


@router.post(
    "/projects/{project}/alerts",
    response_model=AlertRaised,
    tags=["monitoring"],
    openapi_extra=WRITE,
)
def raise_alert(project: Text, body: RaiseAlert, store: StoreDep, who: CallerDep) -> AlertRaised:
    """Open an alert, or update the open one with the same fingerprint (``created`` false)."""
    who.check(Permission.WRITE, project)
    alert, created = store.raise_alert(project, **body.model_dump())
    return AlertRaised(alert=AlertOut.model_validate(alert, from_attributes=True), created=created)


@router.get(
    "/projects/{project}/alerts",
    response_model=list[AlertOut],
    tags=["monitoring"],
    openapi_extra=READ,
)
def list_alerts(
    project: Text,
    store: StoreDep,
    who: CallerDep,
    deployment: Annotated[Text | None, Query()] = None,
    status: Annotated[Literal["open", "resolved"] | None, Query()] = None,
    since_ms: Annotated[Count | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[Alert]:
    """Alerts, most recently seen first."""
    who.check(Permission.READ, project)
    return store.list_alerts(
        project, deployment=deployment, status=status, since_ms=since_ms, limit=limit
    )


@router.get(
    "/projects/{project}/alerts/{alert_id}",
    response_model=AlertOut,
    tags=["monitoring"],
    openapi_extra=READ,
)
def get_alert(project: Text, alert_id: Id, store: StoreDep, who: CallerDep) -> Alert:
    who.check(Permission.READ, project)
    return store.get_alert(project, alert_id)


@router.post(
    "/projects/{project}/alerts/{alert_id}/resolve",
    response_model=AlertOut,
    tags=["monitoring"],
    openapi_extra=WRITE,
)
def resolve_alert(project: Text, alert_id: Id, store: StoreDep, who: CallerDep) -> Alert:
    """Close an alert; the next raise of its fingerprint opens a new one."""
    who.check(Permission.WRITE, project)
    return store.resolve_alert(project, alert_id)
