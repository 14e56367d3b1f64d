"""Deployments and their traffic plans in the SQL store: the current plan and its history.

A change locks the deployment's row (``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE``
already serialises writers), so ``expected_revision`` is checked and the next revision written
in one step: of two writers expecting the same revision, exactly one wins.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from loopwise.errors import ConflictError, NotFoundError, not_found
from loopwise.store.actor import current_actor
from loopwise.store.checks import check_plan_versions
from loopwise.store.entities import Deployment, DeploymentChange, TrafficPlan
from loopwise.store.sql.catalog import SqlCatalog
from loopwise.store.sql.core import now_ms
from loopwise.store.sql.schema import DEPLOYMENT_CHANGES as CHANGES
from loopwise.store.sql.schema import DEPLOYMENTS, MODELS
from loopwise.store.sql.schema import MODEL_VERSIONS as VERSIONS

__all__ = ["SqlDeployments"]

_COLUMNS = (*DEPLOYMENTS.c, MODELS.c.name.label("model"))
_DEPLOYMENTS = select(*_COLUMNS).join(MODELS, MODELS.c.id == DEPLOYMENTS.c.model_id)


def _deployment(row: Any, project: str) -> Deployment:
    return Deployment(
        project=project,
        name=row.name,
        model=row.model,
        plan=TrafficPlan.from_json(row.plan),
        revision=row.revision,
        created_ms=row.created_ms,
        updated_ms=row.updated_ms,
    )


def _change(row: Any) -> DeploymentChange:
    return DeploymentChange(
        revision=row.revision,
        kind=cast(Any, row.kind),
        plan=TrafficPlan.from_json(row.plan),
        reason=row.reason,
        actor=row.actor,
        time_ms=row.time_ms,
        restored_revision=row.restored_revision,
    )


def _check_expected(row: Any, project: str, expected: int | None) -> None:
    if expected is not None and expected != row.revision:
        raise ConflictError(
            f"Deployment {row.name!r} of project {project!r} is at revision {row.revision}, not "
            f"the expected {expected}: someone changed it since it was read. Read it again "
            "(loopwise deploy status) and decide on the current plan.",
            expected_revision=expected,
            revision=row.revision,
        )


class SqlDeployments(SqlCatalog):
    def _model_versions(self, conn: Connection, model_id: int) -> set[int]:
        return set(
            conn.execute(select(VERSIONS.c.version).where(VERSIONS.c.model_id == model_id))
            .scalars()
            .all()
        )

    def _deployment_row(self, conn: Connection, project: str, name: str, lock: bool = False) -> Any:
        project_id = self._project_id(conn, project)
        query = _DEPLOYMENTS.where(
            DEPLOYMENTS.c.project_id == project_id, DEPLOYMENTS.c.name == name
        )
        row = conn.execute(query.with_for_update(of=DEPLOYMENTS) if lock else query).first()
        if row is None:
            names = conn.execute(
                select(DEPLOYMENTS.c.name).where(DEPLOYMENTS.c.project_id == project_id)
            ).scalars()
            raise not_found(
                "deployment",
                name,
                names,
                hint="Create one with: loopwise deploy create NAME --model MODEL --version N",
            )
        return row

    def _append(
        self,
        conn: Connection,
        project: str,
        row: Any,
        kind: str,
        plan: TrafficPlan,
        reason: str,
        restored: int | None = None,
    ) -> Deployment:
        """Write the deployment's next revision (plan, history entry, audit record)."""
        check_plan_versions(plan, row.model, self._model_versions(conn, row.model_id))
        revision, changed_ms = row.revision + 1, now_ms()
        conn.execute(
            DEPLOYMENTS.update()
            .where(DEPLOYMENTS.c.id == row.id)
            .values(plan=plan.to_json(), revision=revision, updated_ms=changed_ms)
        )
        conn.execute(
            CHANGES.insert().values(
                deployment_id=row.id,
                revision=revision,
                kind=kind,
                plan=plan.to_json(),
                reason=reason,
                actor=current_actor().name,
                time_ms=changed_ms,
                restored_revision=restored,
            )
        )
        after: dict[str, Any] = {"revision": revision, "plan": plan.to_json(), "reason": reason}
        if restored is not None:
            after["restored_revision"] = restored
        self._audit(
            conn,
            f"deployment.{kind}",
            project,
            f"deployment:{row.name}",
            {"revision": row.revision, "plan": row.plan},
            after,
        )
        return _deployment(self._deployment_row(conn, project, row.name), project)

    # -- the interface ----------------------------------------------------------------------------
    def _create_deployment(
        self, project: str, name: str, model: str, plan: TrafficPlan, reason: str
    ) -> Deployment:
        def create(conn: Connection) -> Deployment:
            project_id = self._project_id(conn, project)
            model_id = self._model_id(conn, project, model)
            taken = conn.execute(
                _DEPLOYMENTS.where(
                    DEPLOYMENTS.c.project_id == project_id, DEPLOYMENTS.c.name == name
                )
            ).first()
            if taken is not None:
                raise ConflictError(
                    f"Project {project!r} already has a deployment named {name!r} (model "
                    f"{taken.model}, revision {taken.revision}). Change its plan with: loopwise "
                    f"deploy set {name} --plan …, or choose another name.",
                    deployment=name,
                )
            check_plan_versions(plan, model, self._model_versions(conn, model_id))
            created_ms = now_ms()
            deployment_id = conn.execute(
                DEPLOYMENTS.insert()
                .values(
                    project_id=project_id,
                    name=name,
                    model_id=model_id,
                    plan=plan.to_json(),
                    revision=1,
                    created_ms=created_ms,
                    updated_ms=created_ms,
                )
                .returning(DEPLOYMENTS.c.id)
            ).scalar_one()
            conn.execute(
                CHANGES.insert().values(
                    deployment_id=deployment_id,
                    revision=1,
                    kind="create",
                    plan=plan.to_json(),
                    reason=reason,
                    actor=current_actor().name,
                    time_ms=created_ms,
                    restored_revision=None,
                )
            )
            self._audit(
                conn,
                "deployment.create",
                project,
                f"deployment:{name}",
                None,
                {"model": model, "revision": 1, "plan": plan.to_json(), "reason": reason},
            )
            return Deployment(project, name, model, plan, 1, created_ms, created_ms)

        try:
            return self._write(create)
        except IntegrityError:  # created at the same moment by another writer: say so
            return self._write(create)

    def _get_deployment(self, project: str, name: str) -> Deployment:
        with self._read() as conn:
            return _deployment(self._deployment_row(conn, project, name), project)

    def list_deployments(self, project: str) -> list[Deployment]:
        with self._read() as conn:
            project_id = self._project_id(conn, project)
            rows = conn.execute(
                _DEPLOYMENTS.where(DEPLOYMENTS.c.project_id == project_id).order_by(
                    DEPLOYMENTS.c.name
                )
            ).all()
        return [_deployment(row, project) for row in rows]

    def _set_deployment_plan(
        self, project: str, name: str, plan: TrafficPlan, reason: str, expected_revision: int | None
    ) -> Deployment:
        def change(conn: Connection) -> Deployment:
            row = self._deployment_row(conn, project, name, lock=True)
            _check_expected(row, project, expected_revision)
            if TrafficPlan.from_json(row.plan) == plan:
                return _deployment(row, project)  # already this plan: nothing changes
            return self._append(conn, project, row, "set_plan", plan, reason)

        return self._write(change)

    def _deployment_history(self, project: str, name: str) -> list[DeploymentChange]:
        with self._read() as conn:
            row = self._deployment_row(conn, project, name)
            rows = conn.execute(
                select(CHANGES)
                .where(CHANGES.c.deployment_id == row.id)
                .order_by(CHANGES.c.revision)
            ).all()
        return [_change(r) for r in rows]

    def _rollback_deployment(
        self, project: str, name: str, reason: str, to_revision: int | None, expected: int | None
    ) -> Deployment:
        def rollback(conn: Connection) -> Deployment:
            row = self._deployment_row(conn, project, name, lock=True)
            _check_expected(row, project, expected)
            history = {
                r.revision: _change(r)
                for r in conn.execute(select(CHANGES).where(CHANGES.c.deployment_id == row.id))
            }
            target = (
                _rollback_target(history, row.revision, name)
                if to_revision is None
                else to_revision
            )
            if target not in history:
                raise NotFoundError(
                    f"Deployment {name!r} has no revision {target}; its revisions are 1 to "
                    f"{row.revision}. See them with: loopwise deploy history {name}",
                    kind="deployment_revision",
                    wanted=str(target),
                    parameter="to_revision",
                )
            plan = history[target].plan
            if plan == TrafficPlan.from_json(row.plan):
                return _deployment(row, project)  # that plan is in force already
            return self._append(conn, project, row, "rollback", plan, reason, restored=target)

        return self._write(rollback)


def _rollback_target(history: dict[int, DeploymentChange], current: int, name: str) -> int:
    """The revision before the one that first set the current plan (following rollbacks back
    to the change they restored)."""
    origin = current
    while (restored := history[origin].restored_revision) is not None:
        origin = restored
    if origin == 1:
        raise ConflictError(
            f"Deployment {name!r} has nothing earlier to roll back to: its current plan "
            f"({history[current].plan.spec}) is the one it was created with. Set another plan "
            f"with: loopwise deploy set {name} --plan …",
            deployment=name,
        )
    return origin - 1
