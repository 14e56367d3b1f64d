"""Outcomes (delayed ground truth) in the SQL store: idempotent batch inserts and id lookups.

A batch is inserted with ``INSERT … ON CONFLICT DO NOTHING RETURNING request_id``, one statement
per chunk; the ids that did not come back were recorded before, and one lookup tells the
exact duplicates (a no-op) from the conflicts (a different value).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from loopwise.store.checks import CheckedOutcome
from loopwise.store.entities import Outcome, OutcomeReceipt
from loopwise.store.sql.core import SqlCore, now_ms
from loopwise.store.sql.schema import OUTCOMES

__all__ = ["SqlOutcomes"]

CHUNK = 2000  # rows per statement (6 parameters each: under SQLite's 32,766)
LOOKUP_CHUNK = 5000  # ids per IN-query
_BY_IDS = select(
    OUTCOMES.c.request_id, OUTCOMES.c.value, OUTCOMES.c.timestamp_ms, OUTCOMES.c.received_ms
).where(
    OUTCOMES.c.project_id == bindparam("project_id"),
    OUTCOMES.c.deployment == bindparam("deployment"),
    OUTCOMES.c.request_id.in_(bindparam("ids", expanding=True)),
)
_OVERWRITE = (
    OUTCOMES.update()
    .where(
        OUTCOMES.c.project_id == bindparam("p_project_id"),
        OUTCOMES.c.deployment == bindparam("p_deployment"),
        OUTCOMES.c.request_id == bindparam("p_request_id"),
    )
    .values(
        value=bindparam("p_value"),
        timestamp_ms=bindparam("p_timestamp_ms"),
        received_ms=bindparam("p_received_ms"),
    )
)


def _outcome(row: Any) -> Outcome:
    return Outcome(row.request_id, json.loads(row.value), row.timestamp_ms, row.received_ms)


class SqlOutcomes(SqlCore):
    def _record_outcomes(
        self, project: str, deployment: str, outcomes: Sequence[CheckedOutcome], overwrite: bool
    ) -> OutcomeReceipt:
        received = now_ms()
        rows: list[dict[str, Any]] = [
            {
                "deployment": deployment,
                "request_id": o.request_id,
                "value": o.text,
                "timestamp_ms": received if o.timestamp_ms is None else o.timestamp_ms,
                "received_ms": received,
            }
            for o in outcomes
        ]

        def write(conn: Connection) -> OutcomeReceipt:
            project_id = self._project_id(conn, project)
            for row in rows:
                row["project_id"] = project_id
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            insert = (
                dialect.insert(OUTCOMES)
                .on_conflict_do_nothing(index_elements=["project_id", "deployment", "request_id"])
                .returning(OUTCOMES.c.request_id)
            )
            new = 0
            duplicates = 0
            conflicts: list[dict[str, Any]] = []
            for start in range(0, len(rows), CHUNK):
                chunk = rows[start : start + CHUNK]
                inserted = set(conn.execute(insert, chunk).scalars())
                new += len(inserted)
                if len(inserted) == len(chunk):
                    continue
                recorded = [r for r in chunk if r["request_id"] not in inserted]
                stored = self._stored_values(conn, project_id, deployment, recorded)
                for row in recorded:
                    if stored[row["request_id"]] == row["value"]:
                        duplicates += 1
                    else:
                        conflicts.append(row)
            updated = 0
            if overwrite and conflicts:
                conn.execute(_OVERWRITE, [_overwrite_params(r) for r in conflicts])
                updated = len(conflicts)
            ids = [r["request_id"] for r in conflicts]
            if new or updated:
                self._audit(
                    conn,
                    "outcomes.record",
                    project,
                    f"deployment:{project}/{deployment}",
                    None,
                    {"new": new, "updated": updated, "updated_ids": ids[:50] if updated else []},
                )
            return OutcomeReceipt(new, duplicates, updated, [] if overwrite else ids)

        if not rows:
            with self._read() as conn:
                self._project_id(conn, project)  # an unknown project is still an error
            return OutcomeReceipt(0, 0)
        return self._write(write)

    def _stored_values(
        self, conn: Connection, project_id: int, deployment: str, rows: Sequence[dict[str, Any]]
    ) -> dict[str, str]:
        ids = [r["request_id"] for r in rows]
        found = conn.execute(
            select(OUTCOMES.c.request_id, OUTCOMES.c.value).where(
                OUTCOMES.c.project_id == project_id,
                OUTCOMES.c.deployment == deployment,
                OUTCOMES.c.request_id.in_(ids),
            )
        )
        return {request_id: value for request_id, value in found}

    def _get_outcomes(
        self, project: str, deployment: str, request_ids: Sequence[str]
    ) -> dict[str, Outcome]:
        found: dict[str, Outcome] = {}
        with self._read() as conn:
            project_id = self._project_id(conn, project)
            for start in range(0, len(request_ids), LOOKUP_CHUNK):
                params = {
                    "project_id": project_id,
                    "deployment": deployment,
                    "ids": request_ids[start : start + LOOKUP_CHUNK],
                }
                found.update(
                    (row.request_id, _outcome(row)) for row in conn.execute(_BY_IDS, params)
                )
        return found


def _overwrite_params(row: dict[str, Any]) -> dict[str, Any]:
    # Bound names must differ from the columns an UPDATE sets.
    return {f"p_{key}": value for key, value in row.items()}
