"""Deployments as users call them: ``lw.deployments.create("employment-prod", "employment", 3)``.

Each function is one store call on the current store and project (``lw.init``), or on the
``store`` and ``project`` given. A plan is a ``TrafficPlan``, a mapping of version to percent
(``{3: 95, 4: 5}``), or one version number (all the traffic).
"""

from __future__ import annotations

from collections.abc import Mapping

from loopwise.context import current
from loopwise.errors import InvalidArgumentError
from loopwise.store import Deployment, DeploymentChange, Store, TrafficPlan

__all__ = ["PlanLike", "create", "get", "history", "list_deployments", "rollback", "set_plan"]

PlanLike = TrafficPlan | Mapping[int, int] | int
"""A plan as the SDK takes it: a TrafficPlan, ``{version: percent}``, or a version (100%)."""


def _context(store: Store | None, project: str | None) -> tuple[Store, str]:
    if store is not None and project is not None:
        return store, project
    ctx = current()
    return store or ctx.store, project or ctx.project


def _plan(plan: PlanLike) -> TrafficPlan:
    if isinstance(plan, bool):
        raise InvalidArgumentError(
            f"Expected a plan: a version number, {{version: percent}} or a TrafficPlan; got "
            f"{plan!r}.",
            parameter="plan",
        )
    if isinstance(plan, int):
        return TrafficPlan({plan: 100})
    if isinstance(plan, Mapping):
        return TrafficPlan(dict(plan))
    return plan  # a TrafficPlan, or something the store refuses with a message that names it


def create(
    name: str,
    model: str,
    plan: PlanLike,
    *,
    reason: str = "",
    store: Store | None = None,
    project: str | None = None,
) -> Deployment:
    """Create deployment ``name`` of registered ``model`` following ``plan`` (revision 1)."""
    store, project = _context(store, project)
    return store.create_deployment(project, name, model, _plan(plan), reason)


def get(name: str, *, store: Store | None = None, project: str | None = None) -> Deployment:
    """A deployment with its current plan and revision."""
    store, project = _context(store, project)
    return store.get_deployment(project, name)


def list_deployments(*, store: Store | None = None, project: str | None = None) -> list[Deployment]:
    """The project's deployments, by name."""
    store, project = _context(store, project)
    return store.list_deployments(project)


def set_plan(
    name: str,
    plan: PlanLike,
    *,
    reason: str,
    expected_revision: int | None = None,
    store: Store | None = None,
    project: str | None = None,
) -> Deployment:
    """Give a deployment a new plan, as its next revision (the plan in force changes nothing).

    With ``expected_revision``, only if the deployment is still at that revision; otherwise a
    ConflictError, and nothing changes (what a controller that may run twice relies on).
    """
    store, project = _context(store, project)
    return store.set_deployment_plan(project, name, _plan(plan), reason, expected_revision)


def history(
    name: str, *, store: Store | None = None, project: str | None = None
) -> list[DeploymentChange]:
    """Every revision of a deployment, oldest first: the plan, why, who and when."""
    store, project = _context(store, project)
    return store.deployment_history(project, name)


def rollback(
    name: str,
    *,
    reason: str,
    to_revision: int | None = None,
    expected_revision: int | None = None,
    store: Store | None = None,
    project: str | None = None,
) -> Deployment:
    """Restore an earlier plan, recorded as a new revision.

    Without ``to_revision``, the plan in force before the current plan was first set: rolling
    back twice goes two plans back. ConflictError when there is none earlier.
    """
    store, project = _context(store, project)
    return store.rollback_deployment(project, name, reason, to_revision, expected_revision)
