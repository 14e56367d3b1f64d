"""Alerts in the SQL store: raised with deduplication, listed, resolved.

Deduplication is one statement, ``INSERT … ON CONFLICT (project_id, fingerprint) WHERE status =
'open' DO UPDATE``, on the partial unique index of open alerts: two processes raising the same
alert at once make one row (PostgreSQL waits on the index entry; SQLite serialises writers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Connection, select, text
from sqlalchemy.dialects import postgresql, sqlite

from loopwise.errors import NotFoundError
from loopwise.store.entities import Alert
from loopwise.store.sql.core import SqlCore, now_ms
from loopwise.store.sql.schema import ALERTS

__all__ = ["SqlAlerts"]

# The partial index's predicate, as written there: PostgreSQL infers the index only from the same
# expression (a bound parameter would not do).
OPEN = text("status = 'open'")
# Columns a repeat of an open alert updates: it keeps its first_seen_ms and id.
_REPEAT = ("severity", "message", "details", "window_start_ms", "window_end_ms", "last_seen_ms")
# What a repeat may change that is audited when it does (the window and details move every time).
_AUDITED = ("severity", "message")


def _alert(row: Any, project: str) -> Alert:
    return Alert(
        id=row.id,
        project=project,
        deployment=row.deployment,
        rule=row.rule,
        severity=cast(Any, row.severity),
        fingerprint=row.fingerprint,
        status=cast(Any, row.status),
        message=row.message,
        details=dict(row.details or {}),
        window_start_ms=row.window_start_ms,
        window_end_ms=row.window_end_ms,
        first_seen_ms=row.first_seen_ms,
        last_seen_ms=row.last_seen_ms,
        occurrences=row.occurrences,
        resolved_ms=row.resolved_ms,
    )


class SqlAlerts(SqlCore):
    def _raise_alert(self, project: str, fields: Mapping[str, Any]) -> tuple[Alert, bool]:
        def write(conn: Connection) -> tuple[Alert, bool]:
            project_id = self._project_id(conn, project)
            # The open alert as it was (locked: concurrent raises queue here on PostgreSQL),
            # so that what a repeat changes is audited.
            before = conn.execute(
                select(*(ALERTS.c[name] for name in _AUDITED))
                .where(
                    ALERTS.c.project_id == project_id,
                    ALERTS.c.fingerprint == fields["fingerprint"],
                    ALERTS.c.status == "open",
                )
                .with_for_update()
            ).first()
            seen = now_ms()
            row = {
                **fields,
                "project_id": project_id,
                "status": "open",
                "first_seen_ms": seen,
                "last_seen_ms": seen,
                "occurrences": 1,
                "resolved_ms": None,
            }
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            stmt = dialect.insert(ALERTS).values(row)
            stmt = stmt.on_conflict_do_update(
                index_elements=["project_id", "fingerprint"],
                index_where=OPEN,
                set_={
                    **{name: stmt.excluded[name] for name in _REPEAT},
                    "occurrences": ALERTS.c.occurrences + 1,
                },
            ).returning(*ALERTS.c)
            alert = _alert(conn.execute(stmt).one(), project)
            created = alert.occurrences == 1
            if before is not None:
                # A repeat counts (the alert's own record says how often); a repeat that changes
                # what people read (severity, message) is a change, and audited as one.
                old = {name: before._mapping[name] for name in _AUDITED}
                new = {name: getattr(alert, name) for name in _AUDITED}
                changed = [name for name in _AUDITED if old[name] != new[name]]
                if changed:
                    self._audit(
                        conn,
                        "alert.update",
                        project,
                        f"alert:{alert.id}",
                        {name: old[name] for name in changed},
                        {**{name: new[name] for name in changed}, "occurrences": alert.occurrences},
                    )
            elif created:
                self._audit(
                    conn,
                    "alert.open",
                    project,
                    f"alert:{alert.id}",
                    None,
                    {
                        "rule": alert.rule,
                        "severity": alert.severity,
                        "fingerprint": alert.fingerprint,
                        "deployment": alert.deployment,
                    },
                )
            return alert, created

        return self._write(write)

    def _list_alerts(
        self, project: str, deployment: str | None, status: str | None, since: int | None, rows: int
    ) -> list[Alert]:
        with self._read() as conn:
            query = select(ALERTS).where(ALERTS.c.project_id == self._project_id(conn, project))
            if deployment is not None:
                query = query.where(ALERTS.c.deployment == deployment)
            if status is not None:
                query = query.where(ALERTS.c.status == status)
            if since is not None:
                query = query.where(ALERTS.c.last_seen_ms >= since)
            query = query.order_by(ALERTS.c.last_seen_ms.desc(), ALERTS.c.id.desc()).limit(rows)
            return [_alert(row, project) for row in conn.execute(query)]

    def _get_alert(self, project: str, alert_id: int) -> Alert:
        with self._read() as conn:
            return _alert(self._alert_row(conn, project, alert_id), project)

    def _resolve_alert(self, project: str, alert_id: int) -> Alert:

        def write(conn: Connection) -> Alert:
            before = self._alert_row(conn, project, alert_id)
            if before.status == "resolved":
                return _alert(before, project)  # resolving twice changes nothing
            resolved = now_ms()
            conn.execute(
                ALERTS.update()
                .where(ALERTS.c.id == alert_id)
                .values(status="resolved", resolved_ms=resolved)
            )
            self._audit(
                conn,
                "alert.resolve",
                project,
                f"alert:{alert_id}",
                {"status": "open", "occurrences": before.occurrences},
                {"status": "resolved"},
            )
            return _alert(self._alert_row(conn, project, alert_id), project)

        return self._write(write)

    def _alert_row(self, conn: Connection, project: str, alert_id: int) -> Any:
        row = conn.execute(
            select(ALERTS).where(
                ALERTS.c.id == alert_id, ALERTS.c.project_id == self._project_id(conn, project)
            )
        ).first()
        if row is None:
            raise NotFoundError(
                f"Project {project!r} has no alert {alert_id}. List its alerts with: "
                "loopwise monitor alerts --status all",
                kind="alert",
                wanted=str(alert_id),
            )
        return row
