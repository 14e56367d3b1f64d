"""The prediction log's segment index in the SQL store (the Parquet bytes are blobs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from loopwise.store.checks import HOUR_MS
from loopwise.store.entities import PredictionSegment
from loopwise.store.sql.core import SqlCore, now_ms
from loopwise.store.sql.schema import PREDICTION_SEGMENTS as SEGMENTS
from loopwise.store.sql.schema import PROJECTS

__all__ = ["SqlPredictions"]

_COLUMNS = (
    PROJECTS.c.name.label("project"),
    SEGMENTS.c.deployment,
    SEGMENTS.c.hour_ms,
    SEGMENTS.c.digest,
    SEGMENTS.c.num_rows,
    SEGMENTS.c.min_timestamp_ms,
    SEGMENTS.c.max_timestamp_ms,
    SEGMENTS.c.size_bytes,
    SEGMENTS.c.created_ms,
)


def _segment(row: Any) -> PredictionSegment:
    return PredictionSegment(
        project=row.project,
        deployment=row.deployment,
        hour_ms=row.hour_ms,
        digest=row.digest,
        num_rows=row.num_rows,
        min_timestamp_ms=row.min_timestamp_ms,
        max_timestamp_ms=row.max_timestamp_ms,
        size_bytes=row.size_bytes,
        created_ms=row.created_ms,
    )


class SqlPredictions(SqlCore):
    # Spool progress shares the metric spools' table (``SqlCore._advance_spool``): spool ids
    # are unique per file (``<pid>-<random>``), whichever kind of spool made them.
    def _add_prediction_segments(
        self, segments: Sequence[PredictionSegment], spool_id: str | None, upto_seq: int
    ) -> None:
        if not segments and spool_id is None:
            return
        created = now_ms()

        def write(conn: Connection) -> None:
            if spool_id is not None and not self._advance_spool(
                conn,
                spool_id,
                upto_seq,
                sum(s.num_rows for s in segments),
                {s.project for s in segments},
            ):
                return  # committed before: a replay racing a drain, or a retried request
            rows = [
                {
                    "project_id": self._project_id(conn, s.project),
                    "deployment": s.deployment,
                    "hour_ms": s.hour_ms,
                    "digest": s.digest,
                    "num_rows": s.num_rows,
                    "min_timestamp_ms": s.min_timestamp_ms,
                    "max_timestamp_ms": s.max_timestamp_ms,
                    "size_bytes": s.size_bytes,
                    "created_ms": created,
                }
                for s in segments
            ]
            if rows:
                conn.execute(SEGMENTS.insert(), rows)
            if segments:
                self._audit_segments(conn, segments, spool_id, upto_seq)

        self._write(write)

    def _audit_segments(
        self,
        conn: Connection,
        segments: Sequence[PredictionSegment],
        spool_id: str | None = None,
        upto_seq: int = 0,
    ) -> None:
        """One record per batch (the log grows by thousands of rows a second), per project,
        with the spool's progress where a spool wrote it."""
        projects = sorted({s.project for s in segments})
        deployments = sorted({f"{s.project}/{s.deployment}" for s in segments})
        self._audit(
            conn,
            "predictions.log",
            projects[0] if len(projects) == 1 else None,
            f"deployment:{deployments[0]}" if len(deployments) == 1 else "deployments",
            None,
            {
                "deployments": deployments[:50],
                "segments": len(segments),
                "rows": sum(s.num_rows for s in segments),
                "digests": [s.digest for s in segments[:50]],
                **({} if spool_id is None else {"spool_id": spool_id, "upto_seq": upto_seq}),
            },
        )

    def _list_prediction_segments(
        self, project: str, deployment: str | None, start_ms: int | None, end_ms: int | None
    ) -> list[PredictionSegment]:
        with self._read() as conn:
            project_id = self._project_id(conn, project)
            query = (
                select(*_COLUMNS)
                .join(PROJECTS, PROJECTS.c.id == SEGMENTS.c.project_id)
                .where(SEGMENTS.c.project_id == project_id)
            )
            if deployment is not None:
                query = query.where(SEGMENTS.c.deployment == deployment)
            # hour_ms bounds use the index; the timestamps then drop segments outside the range.
            if start_ms is not None:
                query = query.where(
                    SEGMENTS.c.hour_ms > start_ms - HOUR_MS, SEGMENTS.c.max_timestamp_ms >= start_ms
                )
            if end_ms is not None:
                query = query.where(
                    SEGMENTS.c.hour_ms < end_ms, SEGMENTS.c.min_timestamp_ms < end_ms
                )
            rows = conn.execute(
                query.order_by(SEGMENTS.c.hour_ms, SEGMENTS.c.deployment, SEGMENTS.c.id)
            ).all()
        return [_segment(row) for row in rows]
