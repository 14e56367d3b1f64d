"""Deployments and their traffic plans: thin calls to the store."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from loopwise.server.auth import Caller, Permission, caller, permission
from loopwise.server.deployment_schemas import (
    CreateDeployment,
    DeploymentChangeOut,
    DeploymentOut,
    Rollback,
    SetPlan,
)
from loopwise.server.routes.common import StoreDep
from loopwise.server.schemas import Text
from loopwise.store import Deployment, DeploymentChange

router = APIRouter()
CallerDep = Annotated[Caller, Depends(caller)]
READ = permission(Permission.READ)
WRITE = permission(Permission.WRITE)
DEPLOYMENTS = "/projects/{project}/deployments"
DEPLOYMENT = DEPLOYMENTS + "/{deployment}"


@router.post(DEPLOYMENTS, response_model=DeploymentOut, tags=["deployments"], openapi_extra=WRITE)
def create_deployment(
    project: Text, body: CreateDeployment, store: StoreDep, who: CallerDep
) -> Deployment:
    """Create a deployment of a model at revision 1; 409 if the name is taken."""
    who.check(Permission.WRITE, project)
    return store.create_deployment(project, body.name, body.model, body.plan.to_plan(), body.reason)


@router.get(
    DEPLOYMENTS, response_model=list[DeploymentOut], tags=["deployments"], openapi_extra=READ
)
def list_deployments(project: Text, store: StoreDep, who: CallerDep) -> list[Deployment]:
    """The project's deployments by name, each with its current plan."""
    who.check(Permission.READ, project)
    return store.list_deployments(project)


@router.get(DEPLOYMENT, response_model=DeploymentOut, tags=["deployments"], openapi_extra=READ)
def get_deployment(project: Text, deployment: Text, store: StoreDep, who: CallerDep) -> Deployment:
    """A deployment's current plan and revision (what inference servers follow)."""
    who.check(Permission.READ, project)
    return store.get_deployment(project, deployment)


@router.put(
    DEPLOYMENT + "/plan", response_model=DeploymentOut, tags=["deployments"], openapi_extra=WRITE
)
def set_deployment_plan(
    project: Text, deployment: Text, body: SetPlan, store: StoreDep, who: CallerDep
) -> Deployment:
    """Follow a new plan from the next revision on (the same plan changes nothing); 409 when
    ``expected_revision`` is stale."""
    who.check(Permission.WRITE, project)
    return store.set_deployment_plan(
        project, deployment, body.plan.to_plan(), body.reason, body.expected_revision
    )


@router.get(
    DEPLOYMENT + "/history",
    response_model=list[DeploymentChangeOut],
    tags=["deployments"],
    openapi_extra=READ,
)
def deployment_history(
    project: Text, deployment: Text, store: StoreDep, who: CallerDep
) -> list[DeploymentChange]:
    """Every revision, oldest first: the plan, why, who and when."""
    who.check(Permission.READ, project)
    return store.deployment_history(project, deployment)


@router.post(
    DEPLOYMENT + "/rollback",
    response_model=DeploymentOut,
    tags=["deployments"],
    openapi_extra=WRITE,
)
def rollback_deployment(
    project: Text, deployment: Text, body: Rollback, store: StoreDep, who: CallerDep
) -> Deployment:
    """Restore an earlier revision's plan as a new revision; 409 when there is none earlier."""
    who.check(Permission.WRITE, project)
    return store.rollback_deployment(
        project, deployment, body.reason, body.to_revision, body.expected_revision
    )
