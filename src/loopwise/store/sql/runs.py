"""Runs, params, tags, metrics and run artifacts in the SQL store."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, exists, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from loopwise.errors import ConflictError, InvalidArgumentError, NotFoundError
from loopwise.store.artifacts import ArtifactStore
from loopwise.store.base import MetricEntry
from loopwise.store.entities import ArtifactFile, Metric, Run, RunStatus
from loopwise.store.search import ATTRIBUTES, parse_filter, parse_order_by
from loopwise.store.spool import MetricSpool
from loopwise.store.sql.core import SqlCore, now_ms
from loopwise.store.sql.schema import LATEST_METRICS as LATEST
from loopwise.store.sql.schema import METRICS, RUNS, ProjectRow
from loopwise.store.sql.schema import RUN_ARTIFACTS as ARTIFACTS
from loopwise.store.sql.schema import RUN_PARAMS as PARAMS
from loopwise.store.sql.schema import RUN_TAGS as TAGS

__all__ = ["SqlRuns", "upsert"]

CHUNK = 5000  # ids per query: below SQLite's and PostgreSQL's limits on bound parameters
RUN_COLUMNS = (RUNS.c.id, RUNS.c.name, RUNS.c.status, RUNS.c.start_ms, RUNS.c.end_ms)
_STATUS = {status.value: status for status in RunStatus}
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)
_PARAMS_BY_IDS = select(PARAMS.c.run_id, PARAMS.c.key, PARAMS.c.value).where(
    PARAMS.c.run_id.in_(_IDS)
)
_TAGS_BY_IDS = select(TAGS.c.run_id, TAGS.c.key, TAGS.c.value).where(TAGS.c.run_id.in_(_IDS))
_METRICS_BY_IDS = select(LATEST.c.run_id, LATEST.c.key, LATEST.c.value, LATEST.c.is_nan).where(
    LATEST.c.run_id.in_(_IDS)
)


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    update: Sequence[str],
    where: ColumnElement[bool] | None = None,
) -> None:
    """INSERT … ON CONFLICT DO UPDATE for SQLite and PostgreSQL alike."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: stmt.excluded[name] for name in update},
        where=where,
    )
    conn.execute(stmt, list(rows))


def _metric_value(row: Any) -> float:
    return math.nan if row.is_nan else float(row.value)


class SqlRuns(SqlCore):
    artifacts: ArtifactStore
    _spool: MetricSpool

    def __init__(self) -> None:
        super().__init__()
        self._known_runs: set[str] = set()

    # -- runs -----------------------------------------------------------------------------------
    def _create_run(
        self, project: str, name: str, tags: dict[str, str], environment: Mapping[str, Any] | None
    ) -> Run:
        run = Run(
            id=uuid.uuid4().hex,
            project=project,
            name=name,
            status=RunStatus.RUNNING,
            start_ms=now_ms(),
            end_ms=None,
            tags=tags,
            environment=dict(environment or {}),
        )
        run_id = run.id

        def create(conn: Connection) -> None:
            project_id = self._project_id(conn, project)
            conn.execute(
                RUNS.insert().values(
                    id=run_id,
                    project_id=project_id,
                    name=name,
                    status=run.status.value,
                    start_ms=run.start_ms,
                    end_ms=None,
                    environment=run.environment,
                )
            )
            if tags:
                conn.execute(
                    TAGS.insert(),
                    [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()],
                )
            self._audit(
                conn, "run.create", project, f"run:{run_id}", None, {"name": name, "tags": tags}
            )

        self._write(create)
        self._known_runs.add(run_id)
        self._run_projects[run_id] = project
        return run  # exactly what was written: no need to read it back

    def _check_run(self, conn: Connection, run_id: str) -> None:
        if run_id in self._known_runs:
            return
        if (
            not isinstance(run_id, str)
            or conn.execute(select(RUNS.c.id).where(RUNS.c.id == run_id)).first() is None
        ):
            raise NotFoundError(
                f"No run with id {run_id!r}. List run ids with `loopwise runs list`.",
                kind="run",
                wanted=str(run_id),
            )
        self._known_runs.add(run_id)

    def get_run(self, run_id: str) -> Run:
        with self._read() as conn:
            row = conn.execute(
                select(*RUN_COLUMNS, ProjectRow.name, RUNS.c.environment)
                .join(ProjectRow, ProjectRow.id == RUNS.c.project_id)
                .where(RUNS.c.id == run_id)
            ).first()
            if row is None:
                raise NotFoundError(
                    f"No run with id {run_id!r}. List run ids with `loopwise runs list`.",
                    kind="run",
                    wanted=str(run_id),
                )
            return self._assemble(conn, [tuple(row[:5])], row[5], {run_id: row[6] or {}})[0]

    def _assemble(
        self,
        conn: Connection,
        rows: Sequence[tuple[Any, ...]],
        project: str,
        environments: Mapping[str, dict[str, Any]] | None = None,
    ) -> list[Run]:
        """Runs from ``(id, name, status, start_ms, end_ms)`` rows, in order, with their params,
        tags and latest metrics; environments only where given (listings leave them out)."""
        ids = [row[0] for row in rows]
        params: dict[str, dict[str, str]] = {run_id: {} for run_id in ids}
        tags: dict[str, dict[str, str]] = {run_id: {} for run_id in ids}
        metrics: dict[str, dict[str, float]] = {run_id: {} for run_id in ids}
        for start in range(0, len(ids), CHUNK):
            chunk = {"ids": ids[start : start + CHUNK]}
            for run_id, key, value in conn.execute(_PARAMS_BY_IDS, chunk):
                params[run_id][key] = value
            for run_id, key, value in conn.execute(_TAGS_BY_IDS, chunk):
                tags[run_id][key] = value
            for run_id, key, value, is_nan in conn.execute(_METRICS_BY_IDS, chunk):
                metrics[run_id][key] = math.nan if is_nan else value
        return [
            Run(
                id=run_id,
                project=project,
                name=name,
                status=_STATUS[status],
                start_ms=start_ms,
                end_ms=end_ms,
                params=params[run_id],
                tags=tags[run_id],
                metrics=metrics[run_id],
                environment=None if environments is None else environments.get(run_id, {}),
            )
            for run_id, name, status, start_ms, end_ms in rows
        ]

    def end_run(self, run_id: str, status: RunStatus) -> Run:
        try:
            status = RunStatus(status)
        except ValueError:
            raise InvalidArgumentError(
                f"Expected a run status, one of {', '.join(s.value for s in RunStatus)}; "
                f"got {status!r}.",
                parameter="status",
            ) from None
        self.flush()

        def end(conn: Connection) -> None:
            self._check_run(conn, run_id)
            before = conn.execute(select(RUNS.c.status).where(RUNS.c.id == run_id)).scalar()
            conn.execute(
                RUNS.update()
                .where(RUNS.c.id == run_id)
                .values(status=status.value, end_ms=now_ms())
            )
            self._audit(
                conn,
                "run.end",
                self._project_of_run(conn, run_id),
                f"run:{run_id}",
                {"status": before},
                {"status": status.value},
            )

        self._write(end)
        return self.get_run(run_id)

    def _set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        rows = [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()]

        def write(conn: Connection) -> None:
            self._check_run(conn, run_id)
            old = dict(
                conn.execute(
                    select(TAGS.c.key, TAGS.c.value).where(
                        TAGS.c.run_id == run_id, TAGS.c.key.in_([r["key"] for r in rows])
                    )
                ).all()
            )
            upsert(conn, TAGS, rows, ["run_id", "key"], ["value"])
            changed = {r["key"]: r["value"] for r in rows if old.get(r["key"]) != r["value"]}
            if changed:
                self._audit(
                    conn,
                    "run.tags",
                    self._project_of_run(conn, run_id),
                    f"run:{run_id}",
                    {k: old.get(k) for k in changed},
                    changed,
                )

        self._write(write)

    def _log_params(self, run_id: str, params: dict[str, str]) -> None:

        def write(conn: Connection) -> None:
            self._check_run(conn, run_id)
            existing = dict(
                conn.execute(
                    select(PARAMS.c.key, PARAMS.c.value).where(
                        PARAMS.c.run_id == run_id, PARAMS.c.key.in_(list(params))
                    )
                ).all()
            )
            changed = {
                k: (existing[k], v) for k, v in params.items() if k in existing and existing[k] != v
            }
            if changed:
                key, (old, value) = next(iter(changed.items()))
                raise ConflictError(
                    f"Param {key!r} of run {run_id} is already {old!r}; got {value!r}. Params are "
                    "write-once: start a new run for a new value, or log it as a metric or tag.",
                    run_id=run_id,
                    key=key,
                )
            rows = [
                {"run_id": run_id, "key": k, "value": v}
                for k, v in params.items()
                if k not in existing
            ]
            if rows:
                conn.execute(PARAMS.insert(), rows)
                self._audit(
                    conn,
                    "run.params",
                    self._project_of_run(conn, run_id),
                    f"run:{run_id}",
                    None,
                    {r["key"]: r["value"] for r in rows},
                )

        self._write(write)

    # -- metrics --------------------------------------------------------------------------------
    def _write_metric_batch(
        self, entries: Sequence[MetricEntry], spool_id: str | None, upto_seq: int
    ) -> None:
        history: list[dict[str, Any]] = []
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        runs = {e.run_id for e in entries}
        for e in entries:
            is_nan = math.isnan(e.value)
            row = {
                "run_id": e.run_id,
                "key": e.key,
                "value": None if is_nan else e.value,
                "is_nan": is_nan,
                "step": e.step,
                "timestamp_ms": e.timestamp_ms,
            }
            history.append(row)
            current = latest.get((e.run_id, e.key))
            if current is None or (e.step, e.timestamp_ms) >= (
                current["step"],
                current["timestamp_ms"],
            ):
                latest[(e.run_id, e.key)] = row

        def write(conn: Connection) -> None:
            if spool_id is not None and not self._advance_spool(
                conn,
                spool_id,
                upto_seq,
                len(entries),
                set(self._projects_of_runs(conn, runs).values()),
            ):
                return  # this batch was committed before (a replay racing a drain)
            for start in range(0, len(history), 5000):
                conn.execute(METRICS.insert(), history[start : start + 5000])
            table = LATEST
            newer = or_(
                table.c.step < _excluded(conn, "step"),
                and_(
                    table.c.step == _excluded(conn, "step"),
                    table.c.timestamp_ms <= _excluded(conn, "timestamp_ms"),
                ),
            )
            upsert(
                conn,
                LATEST,
                list(latest.values()),
                ["run_id", "key"],
                ["value", "is_nan", "step", "timestamp_ms"],
                newer,
            )
            if history:
                self._audit_metric_batch(conn, entries, spool_id, upto_seq)

        self._write(write)

    def _write_spooled_metrics(
        self, entries: Sequence[MetricEntry], spool_id: str, upto_seq: int
    ) -> None:
        self._check_runs({e.run_id for e in entries})
        self._write_metric_batch(entries, spool_id, upto_seq)

    def _audit_metric_batch(
        self,
        conn: Connection,
        entries: Sequence[MetricEntry],
        spool_id: str | None = None,
        upto_seq: int = 0,
    ) -> None:
        """One record per batch (not per value), naming at most 50 runs and keys, and the
        spool's progress where a spool wrote it."""
        run_ids = sorted({e.run_id for e in entries})
        projects = set(self._projects_of_runs(conn, run_ids).values())
        self._audit(
            conn,
            "run.metrics",
            projects.pop() if len(projects) == 1 else None,
            f"run:{run_ids[0]}" if len(run_ids) == 1 else f"runs:{len(run_ids)}",
            None,
            {
                "run_ids": run_ids[:50],
                "count": len(entries),
                "keys": sorted({e.key for e in entries})[:50],
                **({} if spool_id is None else {"spool_id": spool_id, "upto_seq": upto_seq}),
            },
        )

    def _check_runs(self, run_ids: set[str]) -> None:
        unknown = run_ids - self._known_runs
        if unknown:
            with self._read() as conn:
                for run_id in unknown:
                    self._check_run(conn, run_id)

    def _log_metrics(self, entries: Sequence[MetricEntry]) -> None:
        self._check_runs({e.run_id for e in entries})
        self._write_metric_batch(entries, None, 0)

    def _log_metrics_async(self, entries: Sequence[MetricEntry]) -> None:
        self._check_runs({e.run_id for e in entries})
        self._spool.append(entries)

    def flush(self) -> None:
        self._spool.flush()

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        with self._read() as conn:
            self._check_run(conn, run_id)
            rows = conn.execute(
                select(METRICS)
                .where(METRICS.c.run_id == run_id, METRICS.c.key == key)
                .order_by(METRICS.c.step, METRICS.c.timestamp_ms, METRICS.c.id)
            ).all()
        return [
            Metric(key=r.key, value=_metric_value(r), step=r.step, timestamp_ms=r.timestamp_ms)
            for r in rows
        ]

    # -- search ---------------------------------------------------------------------------------
    def _search_runs(
        self, project: str, filter_string: str, order_by: Sequence[str], max_results: int
    ) -> list[Run]:
        if not isinstance(max_results, int) or max_results < 1:
            raise InvalidArgumentError(
                f"Expected max_results >= 1, got {max_results!r}.", parameter="max_results"
            )
        clauses = parse_filter(filter_string)
        terms = parse_order_by(list(order_by))
        with self._read() as conn:
            project_id = self._project_id(conn, project)
            query = select(*RUN_COLUMNS).where(RUNS.c.project_id == project_id)
            for clause in clauses:
                query = query.where(
                    _clause_sql(clause.kind, clause.key, clause.op, clause.value, conn.dialect.name)
                )
            for i, term in enumerate(terms):
                column: Any
                if term.kind == "attributes":
                    column = RUNS.c[ATTRIBUTES[term.key]]
                else:
                    table = {"metrics": LATEST, "params": PARAMS, "tags": TAGS}[term.kind].alias(
                        f"o{i}"
                    )
                    query = query.outerjoin(
                        table, and_(table.c.run_id == RUNS.c.id, table.c.key == term.key)
                    )
                    column = table.c.value
                # Runs without the value sort last in both directions.
                query = query.order_by(
                    column.is_(None), column.desc() if term.descending else column.asc()
                )
            query = query.order_by(RUNS.c.start_ms.desc(), RUNS.c.id).limit(max_results)
            rows = [tuple(row) for row in conn.execute(query)]
            return self._assemble(conn, rows, project)

    # -- run artifacts --------------------------------------------------------------------------
    def _record_artifacts(self, run_id: str, files: Sequence[ArtifactFile]) -> None:
        rows = []
        for f in files:
            if not self.artifacts.exists(f.digest):
                raise InvalidArgumentError(
                    f"Artifact {f.path!r} refers to {f.digest}, which is not in the artifact "
                    "store. Upload the file's bytes first.",
                    parameter="digest",
                    digest=f.digest,
                )
            rows.append(
                {"run_id": run_id, "path": f.path, "digest": f.digest, "size_bytes": f.size_bytes}
            )
        if not rows:
            return

        def write(conn: Connection) -> None:
            self._check_run(conn, run_id)
            old: dict[str, str] = {}
            paths = [str(r["path"]) for r in rows]
            for start in range(0, len(paths), CHUNK):
                found = conn.execute(
                    select(ARTIFACTS.c.path, ARTIFACTS.c.digest).where(
                        ARTIFACTS.c.run_id == run_id,
                        ARTIFACTS.c.path.in_(paths[start : start + CHUNK]),
                    )
                )
                old.update({path: digest for path, digest in found})
            upsert(conn, ARTIFACTS, rows, ["run_id", "path"], ["digest", "size_bytes"])
            changed = [r for r in rows if old.get(str(r["path"])) != r["digest"]]
            if changed:
                replaced = [
                    {"path": r["path"], "digest": old[str(r["path"])]}
                    for r in changed
                    if r["path"] in old
                ]
                self._audit(
                    conn,
                    "run.artifact",
                    self._project_of_run(conn, run_id),
                    f"run:{run_id}",
                    {"files": replaced[:50]} if replaced else None,
                    {
                        "files": [{"path": r["path"], "digest": r["digest"]} for r in changed[:50]],
                        "count": len(changed),
                    },
                )

        self._write(write)

    def _list_artifacts(self, run_id: str, prefix: str) -> list[ArtifactFile]:
        with self._read() as conn:
            self._check_run(conn, run_id)
            query = select(ARTIFACTS).where(ARTIFACTS.c.run_id == run_id).order_by(ARTIFACTS.c.path)
            if prefix:
                query = query.where(
                    or_(
                        ARTIFACTS.c.path == prefix,
                        ARTIFACTS.c.path.startswith(prefix + "/", autoescape=True),
                    )
                )
            rows = conn.execute(query).all()
        return [ArtifactFile(path=r.path, digest=r.digest, size_bytes=r.size_bytes) for r in rows]


def _excluded(conn: Connection, name: str) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(LATEST).excluded[name]


def _like_to_glob(pattern: str) -> str:
    """A LIKE pattern as the equivalent (case-sensitive) SQLite GLOB pattern."""
    special = {"%": "*", "_": "?", "*": "[*]", "?": "[?]", "[": "[[]"}
    return "".join(special.get(ch, ch) for ch in pattern)


def _compare(column: Any, op: str, value: Any, dialect: str) -> ColumnElement[bool]:
    if op == "like" and dialect == "sqlite":
        # SQLite's LIKE ignores ASCII case, which would make `like` behave as `ilike`.
        glob: ColumnElement[bool] = column.op("GLOB")(_like_to_glob(str(value)))
        return glob
    ops: dict[str, Any] = {
        "=": column.__eq__,
        "!=": column.__ne__,
        ">": column.__gt__,
        ">=": column.__ge__,
        "<": column.__lt__,
        "<=": column.__le__,
        "like": column.like,
        "ilike": column.ilike,
    }
    result: ColumnElement[bool] = ops[op](value)
    return result


def _clause_sql(
    kind: str, key: str, op: str, value: str | float, dialect: str
) -> ColumnElement[bool]:
    if kind == "attributes":
        column = RUNS.c[ATTRIBUTES[key]]
        return _compare(column, op, value, dialect)
    if kind == "metrics":
        number = float(value)
        inner = select(LATEST.c.run_id).where(LATEST.c.run_id == RUNS.c.id, LATEST.c.key == key)
        if math.isnan(number):
            test = LATEST.c.is_nan if op == "=" else ~LATEST.c.is_nan
            return exists(inner.where(test))
        return exists(inner.where(~LATEST.c.is_nan, _compare(LATEST.c.value, op, number, dialect)))
    table = PARAMS if kind == "params" else TAGS
    inner = select(table.c.run_id).where(table.c.run_id == RUNS.c.id, table.c.key == key)
    return exists(inner.where(_compare(table.c.value, op, str(value), dialect)))
