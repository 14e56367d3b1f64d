"""API tokens and the audit log in the SQL store.

A token's secret is ``lw_<id>_<random>``: the id finds the row, and only a salted sha256 of the
secret is kept (enough for 256-bit random secrets, which need no slow password hash). Records are
appended by ``SqlCore._audit`` in each change's transaction; this module reads and verifies them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Text, cast, select
from sqlalchemy.exc import IntegrityError

from loopwise.errors import AuthenticationError, InvalidArgumentError, not_found
from loopwise.store.actor import current_actor
from loopwise.store.audit import AuditHead, parse_stored_json, verify_chain
from loopwise.store.checks import INVALID_TOKEN, check_name
from loopwise.store.entities import AuditRecord, AuditVerification, Role, Token
from loopwise.store.sql.core import SqlCore, now_ms
from loopwise.store.sql.schema import AUDIT_HEAD, AUDIT_LOG, PROJECTS, TOKENS

__all__ = ["SqlAccess", "parse_secret"]

SECRET_PREFIX = "lw_"
TOKEN_ID_PREFIX = "tok_"
VERIFY_CHUNK = 1000  # records read at a time while verifying: memory stays bounded
MAX_AUDIT_PAGE = 10_000
_TOKEN_COLUMNS = (
    TOKENS.c.id,
    TOKENS.c.name,
    TOKENS.c.role,
    PROJECTS.c.name.label("project"),
    TOKENS.c.created_ms,
    TOKENS.c.created_by,
    TOKENS.c.revoked_ms,
)
_TOKENS = select(*_TOKEN_COLUMNS).outerjoin(PROJECTS, PROJECTS.c.id == TOKENS.c.project_id)


def _secret_hash(salt: str, secret: str) -> str:
    return hashlib.sha256((salt + secret).encode()).hexdigest()


def parse_secret(secret: object) -> str | None:
    """The token id in a well-formed secret, else None."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        return None
    parts = secret.split("_", 2)
    if len(parts) != 3 or len(parts[1]) != 12 or len(parts[2]) != 43:
        return None
    return TOKEN_ID_PREFIX + parts[1]


def _check_role(role: object) -> Role:
    if isinstance(role, str) and role in {r.value for r in Role}:
        return Role(role)
    allowed = ", ".join(r.value for r in Role)
    raise InvalidArgumentError(
        f"Expected a token role, one of {allowed}; got {role!r}. Use admin for everything, "
        "editor to read and write data, viewer to read.",
        parameter="role",
        allowed=[r.value for r in Role],
    )


def _token(row: Any) -> Token:
    return Token(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        project=row.project,
        created_ms=row.created_ms,
        created_by=row.created_by,
        revoked_ms=row.revoked_ms,
    )


# before/after are read as the stored text and parsed strictly here, not by the driver: an
# edited value (NaN, a repeated key, invalid, deeply nested or not an object) becomes an
# UnreadableJson that verifying names and listing shows, never a crash or a silently other value.
_AUDIT_COLUMNS = [c for c in AUDIT_LOG.c if c.name not in ("before", "after")] + [
    cast(AUDIT_LOG.c.before, Text).label("before"),
    cast(AUDIT_LOG.c.after, Text).label("after"),
]


def _record(row: Any) -> AuditRecord:
    return AuditRecord(
        seq=row.seq,
        time_ms=row.time_ms,
        actor=row.actor,
        token_id=row.token_id,
        action=row.action,
        project=row.project,
        target=row.target,
        before=parse_stored_json(row.before),
        after=parse_stored_json(row.after),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


class SqlAccess(SqlCore):
    # -- tokens ---------------------------------------------------------------------------------
    def create_token(
        self, role: Role | str, project: str | None = None, name: str = ""
    ) -> tuple[Token, str]:
        role = _check_role(role)
        if project is not None:
            check_name(project, "project")
        if name:
            check_name(name, "token")
        created_by = current_actor().name

        def create(conn: Connection) -> tuple[Token, str]:
            project_id = None if project is None else self._project_id(conn, project)
            token_id = TOKEN_ID_PREFIX + secrets.token_hex(6)
            secret = f"{SECRET_PREFIX}{token_id.removeprefix(TOKEN_ID_PREFIX)}_"
            secret += secrets.token_urlsafe(32)
            salt = secrets.token_hex(16)
            token = Token(
                id=token_id,
                name=name or token_id,
                role=role,
                project=project,
                created_ms=now_ms(),
                created_by=created_by,
            )
            conn.execute(
                TOKENS.insert().values(
                    id=token.id,
                    name=token.name,
                    role=token.role.value,
                    project_id=project_id,
                    salt=salt,
                    secret_hash=_secret_hash(salt, secret),
                    created_ms=token.created_ms,
                    created_by=token.created_by,
                    revoked_ms=None,
                )
            )
            self._audit(
                conn,
                "token.create",
                project,
                f"token:{token.id}",
                None,
                {"name": token.name, "role": token.role.value, "project": project},
            )
            return token, secret

        try:
            return self._write(create)
        except IntegrityError:  # a 48-bit id collided: draw another
            return self._write(create)

    def list_tokens(self, include_revoked: bool = False) -> list[Token]:
        query = _TOKENS.order_by(TOKENS.c.created_ms, TOKENS.c.id)
        if not include_revoked:
            query = query.where(TOKENS.c.revoked_ms.is_(None))
        with self._read() as conn:
            return [_token(row) for row in conn.execute(query)]

    def revoke_token(self, token_id: str) -> Token:
        def revoke(conn: Connection) -> Token:
            row = conn.execute(_TOKENS.where(TOKENS.c.id == str(token_id))).first()
            if row is None:
                ids = conn.execute(select(TOKENS.c.id)).scalars().all()
                raise not_found("token", str(token_id), ids, hint="List them: loopwise token list.")
            token = _token(row)
            if token.revoked_ms is not None:
                return token  # revoking twice changes nothing
            revoked_ms = now_ms()
            conn.execute(
                TOKENS.update().where(TOKENS.c.id == token_id).values(revoked_ms=revoked_ms)
            )
            self._audit(
                conn,
                "token.revoke",
                token.project,
                f"token:{token.id}",
                {"revoked_ms": None},
                {"revoked_ms": revoked_ms},
            )
            return dataclasses.replace(token, revoked_ms=revoked_ms)

        return self._write(revoke)

    def authenticate(self, secret: str) -> Token:
        token_id = parse_secret(secret)
        row = None
        if token_id is not None:
            with self._read() as conn:
                row = conn.execute(
                    select(*_TOKEN_COLUMNS, TOKENS.c.salt, TOKENS.c.secret_hash)
                    .outerjoin(PROJECTS, PROJECTS.c.id == TOKENS.c.project_id)
                    .where(TOKENS.c.id == token_id)
                ).first()
        # Hash and compare even for an unknown id, so that timing does not tell ids apart.
        salt, expected = (row.salt, row.secret_hash) if row is not None else ("", "0" * 64)
        digest = _secret_hash(salt, secret if isinstance(secret, str) else "")
        matches = hmac.compare_digest(digest, expected)
        if row is None or not matches or row.revoked_ms is not None:
            raise AuthenticationError(INVALID_TOKEN)
        return _token(row)

    # -- audit log ------------------------------------------------------------------------------
    def audit_log(
        self, since_ms: int | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[AuditRecord]:
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 1 <= limit <= MAX_AUDIT_PAGE
        ):
            raise InvalidArgumentError(
                f"Expected limit between 1 and {MAX_AUDIT_PAGE}, got {limit!r}. Page through "
                "longer logs with after_seq=<the last seq you got>.",
                parameter="limit",
            )
        if isinstance(after_seq, bool) or not isinstance(after_seq, int) or after_seq < 0:
            raise InvalidArgumentError(
                f"Expected after_seq to be a record number >= 0, got {after_seq!r}.",
                parameter="after_seq",
            )
        if since_ms is not None and (isinstance(since_ms, bool) or not isinstance(since_ms, int)):
            raise InvalidArgumentError(
                f"Expected since_ms as milliseconds since the epoch, got {since_ms!r}.",
                parameter="since_ms",
            )
        query = select(*_AUDIT_COLUMNS).where(AUDIT_LOG.c.seq > after_seq)
        if since_ms is not None:
            query = query.where(AUDIT_LOG.c.time_ms >= since_ms)
        with self._read() as conn:
            rows = conn.execute(query.order_by(AUDIT_LOG.c.seq).limit(limit)).all()
        return [_record(row) for row in rows]

    def verify_audit(self) -> AuditVerification:
        with self._read() as conn:
            if conn.dialect.name == "postgresql":
                # One snapshot for the head and every chunk, while writers keep appending.
                conn.execution_options(isolation_level="REPEATABLE READ")
            head_row = conn.execute(
                select(AUDIT_HEAD.c.seq, AUDIT_HEAD.c.hash).where(AUDIT_HEAD.c.id == 1)
            ).first()
            head = None if head_row is None else AuditHead(head_row.seq, head_row.hash)
            return verify_chain(self._all_records(conn), head)

    def _all_records(self, conn: Connection) -> Iterator[AuditRecord]:
        after = None
        while True:
            query = select(*_AUDIT_COLUMNS).order_by(AUDIT_LOG.c.seq).limit(VERIFY_CHUNK)
            if after is not None:
                query = query.where(AUDIT_LOG.c.seq > after)
            rows = conn.execute(query).all()
            for row in rows:
                yield _record(row)
            if len(rows) < VERIFY_CHUNK:
                return
            after = rows[-1].seq
