"""The autopilot's policies and decisions in the SQL store.

A policy change locks the deployment's row, as plan changes do, so ``expected_revision`` is
checked and the next revision written in one step. Decisions are claimed by their primary key
``(deployment, seq)``: of two controllers that record the same step, the database lets exactly
one insert it (on PostgreSQL too, where the check that ``seq`` follows the last one could read
the same last one in both transactions), and the other gets a ConflictError.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from loopwise.errors import ConflictError, NotFoundError
from loopwise.store.actor import current_actor
from loopwise.store.checks import CheckedDecision
from loopwise.store.entities import AutopilotDecision, AutopilotPolicy
from loopwise.store.sql.core import now_ms
from loopwise.store.sql.deployments import SqlDeployments
from loopwise.store.sql.schema import AUTOPILOT_DECISIONS as DECISIONS
from loopwise.store.sql.schema import AUTOPILOT_POLICIES as POLICIES

__all__ = ["SqlAutopilot"]


def _policy(row: Any, project: str, deployment: str) -> AutopilotPolicy:
    return AutopilotPolicy(
        project=project,
        deployment=deployment,
        revision=row.revision,
        text=row.text,
        actor=row.actor,
        created_ms=row.created_ms,
    )


def _decision(row: Any, project: str, deployment: str) -> AutopilotDecision:
    return AutopilotDecision(
        project=project,
        deployment=deployment,
        seq=row.seq,
        kind=row.kind,
        summary=row.summary,
        state=json.loads(row.state),
        evidence=json.loads(row.evidence),
        at_ms=row.at_ms,
        actor=row.actor,
        created_ms=row.created_ms,
    )


def _seq_conflict(project: str, deployment: str, seq: int, last: int) -> ConflictError:
    taken = (
        f"already has decision {seq}"
        if seq <= last
        else f"has no decision {seq - 1} yet (decisions are numbered without gaps)"
    )
    return ConflictError(
        f"The autopilot of deployment {deployment!r} (project {project!r}) {taken}: its "
        f"decisions go up to {last}, so the next is {last + 1}. Another controller may be "
        "running on this deployment, or this one decided from stale state: read the latest "
        "decision and decide again from its state.",
        parameter="seq",
        seq=seq,
        expected_seq=last + 1,
    )


class SqlAutopilot(SqlDeployments):
    def _last_policy(self, conn: Connection, deployment_id: int) -> Any:
        return conn.execute(
            select(POLICIES)
            .where(POLICIES.c.deployment_id == deployment_id)
            .order_by(POLICIES.c.revision.desc())
            .limit(1)
        ).first()

    def _last_seq(self, conn: Connection, deployment_id: int) -> int:
        last = conn.execute(
            select(func.max(DECISIONS.c.seq)).where(DECISIONS.c.deployment_id == deployment_id)
        ).scalar()
        return int(last or 0)

    # -- policies ---------------------------------------------------------------------------------
    def _set_autopilot_policy(
        self, project: str, deployment: str, text: str, expected_revision: int | None
    ) -> AutopilotPolicy:

        def change(conn: Connection) -> AutopilotPolicy:
            row = self._deployment_row(conn, project, deployment, lock=True)
            current = self._last_policy(conn, row.id)
            revision = 0 if current is None else current.revision
            if expected_revision is not None and expected_revision != revision:
                raise ConflictError(
                    f"The autopilot policy of deployment {deployment!r} (project {project!r}) "
                    f"is at revision {revision}, not the expected {expected_revision}: someone "
                    "changed it since it was read. Read it again and decide on the current policy.",
                    expected_revision=expected_revision,
                    revision=revision,
                )
            if current is not None and current.text == text:
                return _policy(current, project, deployment)  # already this policy
            created_ms, actor = now_ms(), current_actor().name
            conn.execute(
                POLICIES.insert().values(
                    deployment_id=row.id,
                    revision=revision + 1,
                    text=text,
                    actor=actor,
                    created_ms=created_ms,
                )
            )
            self._audit(
                conn,
                "autopilot.policy",
                project,
                f"deployment:{deployment}",
                None if current is None else {"revision": revision},
                {"revision": revision + 1, "text": text},
            )
            return AutopilotPolicy(project, deployment, revision + 1, text, actor, created_ms)

        return self._write(change)

    def _get_autopilot_policy(
        self, project: str, deployment: str, revision: int | None
    ) -> AutopilotPolicy:
        with self._read() as conn:
            row = self._deployment_row(conn, project, deployment)
            last = self._last_policy(conn, row.id)
            found = last
            if revision is not None and last is not None and revision != last.revision:
                found = conn.execute(
                    select(POLICIES).where(
                        POLICIES.c.deployment_id == row.id, POLICIES.c.revision == revision
                    )
                ).first()
        if last is None:
            raise NotFoundError(
                f"Deployment {deployment!r} of project {project!r} has no autopilot policy "
                f"yet. Set one with: loopwise autopilot set-policy {deployment} FILE",
                kind="autopilot_policy",
                wanted=deployment,
            )
        if found is None:
            raise NotFoundError(
                f"Deployment {deployment!r} has no autopilot policy revision {revision}; its "
                f"revisions are 1 to {last.revision}. Omit the revision for the current one.",
                kind="autopilot_policy",
                wanted=f"{deployment}@{revision}",
                parameter="revision",
            )
        return _policy(found, project, deployment)

    # -- decisions --------------------------------------------------------------------------------
    def _record_autopilot_decision(
        self, project: str, deployment: str, decision: CheckedDecision
    ) -> AutopilotDecision:

        def record(conn: Connection) -> AutopilotDecision:
            row = self._deployment_row(conn, project, deployment)
            last = self._last_seq(conn, row.id)
            if decision.seq != last + 1:
                raise _seq_conflict(project, deployment, decision.seq, last)
            created_ms, actor = now_ms(), current_actor().name
            conn.execute(
                DECISIONS.insert().values(
                    deployment_id=row.id,
                    seq=decision.seq,
                    kind=decision.kind,
                    summary=decision.summary,
                    state=decision.state_json,
                    evidence=decision.evidence_json,
                    at_ms=decision.at_ms,
                    actor=actor,
                    created_ms=created_ms,
                )
            )
            self._audit(
                conn,
                f"autopilot.{decision.kind}",
                project,
                f"deployment:{deployment}",
                None,
                {
                    "seq": decision.seq,
                    "kind": decision.kind,
                    "summary": decision.summary,
                    "at_ms": decision.at_ms,
                },
            )
            return AutopilotDecision(
                project,
                deployment,
                decision.seq,
                decision.kind,
                decision.summary,
                decision.state,
                decision.evidence,
                decision.at_ms,
                actor,
                created_ms,
            )

        try:
            return self._write(record)
        except IntegrityError:
            # Another writer inserted this seq after our read (PostgreSQL's read committed):
            # the primary key refused the second.
            with self._read() as conn:
                last = self._last_seq(conn, self._deployment_row(conn, project, deployment).id)
            raise _seq_conflict(project, deployment, decision.seq, last) from None

    def _autopilot_decisions(
        self, project: str, deployment: str, after_seq: int, limit: int | None
    ) -> list[AutopilotDecision]:
        with self._read() as conn:
            row = self._deployment_row(conn, project, deployment)
            query = (
                select(DECISIONS)
                .where(DECISIONS.c.deployment_id == row.id, DECISIONS.c.seq > after_seq)
                .order_by(DECISIONS.c.seq)
            )
            rows = conn.execute(query if limit is None else query.limit(limit)).all()
        return [_decision(r, project, deployment) for r in rows]

    def _latest_autopilot_decision(self, project: str, deployment: str) -> AutopilotDecision | None:
        with self._read() as conn:
            row = self._deployment_row(conn, project, deployment)
            found = conn.execute(
                select(DECISIONS)
                .where(DECISIONS.c.deployment_id == row.id)
                .order_by(DECISIONS.c.seq.desc())
                .limit(1)
            ).first()
        return None if found is None else _decision(found, project, deployment)
