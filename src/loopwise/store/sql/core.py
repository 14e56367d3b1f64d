"""Engines, transactions and projects of the SQL metadata store (SQLite or PostgreSQL).

SQLite runs in WAL mode. Write transactions start with ``BEGIN IMMEDIATE`` so that writers
queue on the database lock (with a long busy timeout) instead of failing half-way with
"database is locked"; readers use a second engine and never wait for writers.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, bindparam, create_engine, event, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.pool import NullPool

from loopwise.errors import InvalidArgumentError, NotFoundError, StoreError, not_found
from loopwise.store.actor import current_actor
from loopwise.store.audit import chain_hash, normalise
from loopwise.store.entities import Project
from loopwise.store.sql.schema import AUDIT_HEAD, AUDIT_LOG, PROJECTS, RUNS, ProjectRow
from loopwise.store.sql.schema import METRIC_SPOOLS as SPOOLS

__all__ = ["SqlCore", "make_engines", "now_ms"]

T = TypeVar("T")
BUSY_TIMEOUT_S = 60.0
# Built once: an audit record is appended with every change, so its statements stay cheap.
_LOCK_HEAD = (
    select(AUDIT_HEAD.c.seq, AUDIT_HEAD.c.hash).where(AUDIT_HEAD.c.id == 1).with_for_update()
)
_APPEND = AUDIT_LOG.insert()
_ADVANCE_HEAD = (
    AUDIT_HEAD.update()
    .where(AUDIT_HEAD.c.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


def now_ms() -> int:
    return int(time.time() * 1000)


def _enable_wal(cursor: Any) -> None:
    """Put the database file in WAL mode, waiting while other processes open it too.

    Switching a new database to WAL needs an exclusive lock and does not wait on the busy
    timeout: when several processes open a new store at once, all but one get "database is
    locked". WAL is recorded in the file, so retrying settles it.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay_s = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            transient = "locked" in str(exc) or "busy" in str(exc)
            if not transient or time.monotonic() > deadline:
                raise
        time.sleep(delay_s * (1 + random.random()))
        delay_s = min(delay_s * 2, 0.1)


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    engine = create_engine(
        url, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself (the documented recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        _enable_wal(cursor)
        # NORMAL in WAL mode survives a killed process; only an OS crash can lose the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def make_engines(url: str) -> tuple[Engine, Engine]:
    """``(write_engine, read_engine)`` for a database URL."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, immediate=True), _sqlite_engine(url, immediate=False)
    engine = create_engine(
        url, pool_pre_ping=True, poolclass=NullPool if "+psycopg" not in url else None
    )
    return engine, engine


def _create_project_hint(name: str) -> str:
    """How to create a missing project, from Python and from the command line."""
    return f"Create it with lw.init(project={name!r}) or `loopwise projects create {name}`."


class SqlCore:
    """Transactions with retry, and the project lookups every other part needs."""

    write_engine: Engine
    read_engine: Engine
    uri: str

    def __init__(self) -> None:
        self._project_ids: dict[str, int] = {}
        self._run_projects: dict[str, str] = {}  # runs never change project
        # SQLite has one writer at a time, and its busy handler makes waiters sleep and poll.
        # Threads of this process queue here instead, in order (the server has many threads).
        self._sqlite_writer = threading.Lock()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.read_engine.connect() as conn:
            yield conn

    def _write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one write transaction, retrying when the database is briefly busy."""
        delay_s = 0.01
        deadline = time.monotonic() + BUSY_TIMEOUT_S * 2
        while True:
            try:
                if self.write_engine.dialect.name == "sqlite":
                    with self._sqlite_writer, self.write_engine.begin() as conn:
                        return work(conn)
                with self.write_engine.begin() as conn:
                    return work(conn)
            except OperationalError as exc:
                message = str(exc.orig)
                transient = (
                    "locked" in message or "busy" in message or "could not serialize" in message
                )
                if not transient or time.monotonic() > deadline:
                    raise StoreError(
                        f"The metadata database at {self.uri} refused a write: {message}. "
                        "If another program holds it open for a long time, stop that program.",
                    ) from exc
                time.sleep(delay_s * (1 + random.random()))
                delay_s = min(delay_s * 2, 0.5)

    # -- audit ----------------------------------------------------------------------------------
    def _audit(
        self,
        conn: Connection,
        action: str,
        project: str | None,
        target: str,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
    ) -> None:
        """Append a record for a change to the audit log, in the change's own transaction.

        Call it last in the transaction: it locks the log's head row until the commit (on
        PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers), so records get
        consecutive numbers and each links to the one before.
        """
        head = conn.execute(_LOCK_HEAD).first()
        if head is None:
            raise StoreError(
                f"The audit log of the store at {self.uri} has lost its head row, so no change "
                "can be recorded: the log was tampered with. See what happened with "
                "`loopwise audit verify`.",
            )
        actor = current_actor()
        content = {
            "seq": head.seq + 1,
            "time_ms": now_ms(),
            "actor": actor.name,
            "token_id": actor.token_id,
            "action": action,
            "project": project,
            "target": target,
            "before": normalise(before),
            "after": normalise(after),
        }
        digest = chain_hash(head.hash, content)
        conn.execute(_APPEND, {**content, "prev_hash": head.hash, "hash": digest})
        conn.execute(_ADVANCE_HEAD, {"new_seq": content["seq"], "new_hash": digest})

    def _projects_of_runs(self, conn: Connection, run_ids: Iterable[str]) -> dict[str, str]:
        """The project name of each (existing) run, for the audit log."""
        ids = list(dict.fromkeys(run_ids))
        missing = [r for r in ids if r not in self._run_projects]
        for start in range(0, len(missing), 5000):
            rows = conn.execute(
                select(RUNS.c.id, PROJECTS.c.name)
                .join(PROJECTS, PROJECTS.c.id == RUNS.c.project_id)
                .where(RUNS.c.id.in_(missing[start : start + 5000]))
            )
            self._run_projects.update({run_id: name for run_id, name in rows})
        return {r: self._run_projects[r] for r in ids if r in self._run_projects}

    def _project_of_run(self, conn: Connection, run_id: str) -> str | None:
        return self._projects_of_runs(conn, [run_id]).get(run_id)

    # -- spool progress -------------------------------------------------------------------------
    # A spool (metrics or predictions, ``store/spool.py``) records how far it has written, in
    # the transaction of each batch, so a replay after a crash writes each record once. The
    # progress moves only with records: never ahead of what a batch brings, never by an empty
    # one, so that nobody can make a spool's records look written when they were not.
    def _advance_spool(
        self, conn: Connection, spool_id: str, upto_seq: int, count: int, projects: set[str]
    ) -> bool:
        """Record that ``spool_id`` reached ``upto_seq`` with a batch of ``count`` records of
        ``projects``; False when it had (the batch is a replay: write nothing)."""
        row = conn.execute(
            select(SPOOLS.c.committed_seq, SPOOLS.c.project_id)
            .where(SPOOLS.c.spool_id == spool_id)
            .with_for_update()
        ).first()
        done = 0 if row is None else int(row.committed_seq)
        if upto_seq <= done:
            return False
        if count == 0:
            raise InvalidArgumentError(
                f"Expected records with spool {spool_id!r}'s progress: an empty batch cannot "
                f"move it (from {done} to {upto_seq}). Send the records with the progress.",
                parameter="upto_seq",
            )
        if row is not None and upto_seq > done + count:
            raise InvalidArgumentError(
                f"Expected upto_seq at most {done + count} for spool {spool_id!r} (it is at "
                f"{done} and the batch brings {count} records), got {upto_seq}. A spool's "
                "progress cannot move ahead of the records written.",
                parameter="upto_seq",
            )
        project_id = self._project_id(conn, next(iter(projects))) if len(projects) == 1 else None
        if row is None:
            conn.execute(
                SPOOLS.insert().values(
                    spool_id=spool_id, committed_seq=upto_seq, project_id=project_id
                )
            )
        else:
            mixed = row.project_id if row.project_id == project_id else None
            conn.execute(
                SPOOLS.update()
                .where(SPOOLS.c.spool_id == spool_id)
                .values(committed_seq=upto_seq, project_id=mixed)
            )
        return True

    def _spool_row(self, conn: Connection, spool_id: str, project: str | None) -> Any:
        """A spool's progress row (None if it has none); with ``project``, NotFoundError when
        the spool belongs to another project, or to several."""
        row = conn.execute(
            select(SPOOLS.c.committed_seq, PROJECTS.c.name.label("project"))
            .select_from(SPOOLS)
            .outerjoin(PROJECTS, PROJECTS.c.id == SPOOLS.c.project_id)
            .where(SPOOLS.c.spool_id == spool_id)
        ).first()
        if row is not None and project is not None and row.project != project:
            raise NotFoundError(
                f"Project {project!r} has no spool {spool_id!r}. A spool belongs to the project "
                "its records were written to; use a token for all projects for others.",
                kind="spool",
                wanted=spool_id,
            )
        return row

    def _spool_progress(self, spool_id: str, project: str | None) -> int:
        with self._read() as conn:
            row = self._spool_row(conn, spool_id, project)
        return 0 if row is None else int(row.committed_seq)

    def _forget_spool_progress(self, spool_id: str, project: str | None) -> None:
        def forget(conn: Connection) -> None:
            row = self._spool_row(conn, spool_id, project)
            if row is None:
                return  # forgetting twice changes nothing
            conn.execute(SPOOLS.delete().where(SPOOLS.c.spool_id == spool_id))
            self._audit(
                conn,
                "spool.forget",
                row.project,
                f"spool:{spool_id}",
                {"committed_seq": row.committed_seq},
                None,
            )

        self._write(forget)

    def _committed_seq(self, spool_id: str) -> int:
        """Unchecked, for this process's own spool."""
        with self._read() as conn:
            value = conn.execute(
                select(SPOOLS.c.committed_seq).where(SPOOLS.c.spool_id == spool_id)
            ).scalar()
        return int(value or 0)

    def _forget_spool(self, spool_id: str) -> None:
        """Unaudited, for this process's own spool once its file is gone (not an API change)."""
        self._write(lambda conn: conn.execute(SPOOLS.delete().where(SPOOLS.c.spool_id == spool_id)))

    # -- projects -------------------------------------------------------------------------------
    def _project_id(self, conn: Connection, name: str) -> int:
        cached = self._project_ids.get(name)
        if cached is not None:
            return cached
        row = conn.execute(select(ProjectRow.id).where(ProjectRow.name == name)).scalar()
        if row is None:
            names = conn.execute(select(ProjectRow.name)).scalars().all()
            raise not_found("project", name, names, hint=_create_project_hint(name))
        self._project_ids[name] = row
        return row

    def _get_or_create_project(self, name: str) -> Project:
        try:
            return self.get_project(name)
        except LookupError:
            pass

        def create(conn: Connection) -> None:
            conn.execute(PROJECTS.insert().values(name=name, created_ms=now_ms()))
            self._audit(conn, "project.create", name, f"project:{name}", None, {"name": name})

        with suppress(IntegrityError):  # created concurrently by another process: fine
            self._write(create)
        return self.get_project(name)

    def get_project(self, name: str) -> Project:
        with self._read() as conn:
            row = conn.execute(select(ProjectRow).where(ProjectRow.name == name)).first()
            if row is None:
                names = conn.execute(select(ProjectRow.name)).scalars().all()
                raise not_found("project", name, names, hint=_create_project_hint(name))
            return Project(id=row.id, name=row.name, created_ms=row.created_ms)

    def list_projects(self) -> list[Project]:
        with self._read() as conn:
            rows = conn.execute(select(ProjectRow).order_by(ProjectRow.name)).all()
            return [Project(id=r.id, name=r.name, created_ms=r.created_ms) for r in rows]
