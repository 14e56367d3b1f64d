"""Tokens, the caller's identity and the audit log (admin only, except ``/whoami``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from loopwise.server.auth import Caller, Permission, caller, permission
from loopwise.server.routes.common import StoreDep
from loopwise.server.schemas import Count, Int64, Text
from loopwise.store.entities import AuditRecord, AuditVerification, Role, Token

router = APIRouter(tags=["access"])
CallerDep = Annotated[Caller, Depends(caller)]
ADMIN = permission(Permission.ADMIN)


class CreateToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    project: Text | None = None
    name: Text = ""


class TokenOut(BaseModel):
    id: str
    name: str
    role: Role
    project: str | None
    created_ms: int
    created_by: str
    revoked_ms: int | None


class TokenCreated(BaseModel):
    token: TokenOut
    secret: str
    """Shown once: the server keeps only a salted hash of it."""


class AuditRecordOut(BaseModel):
    seq: int
    time_ms: int
    actor: str
    token_id: str | None
    action: str
    project: str | None
    target: str
    before: dict[str, object] | None
    after: dict[str, object] | None
    prev_hash: str
    hash: str


class AuditVerificationOut(BaseModel):
    ok: bool
    records: int
    head_hash: str | None
    broken_seq: int | None
    reason: str


class WhoAmI(BaseModel):
    actor: str
    token_id: str | None
    role: Role
    project: str | None
    token: TokenOut | None
    """The token sent with the request (None when authentication is off and none was sent)."""


@router.get("/whoami", response_model=WhoAmI, openapi_extra=permission(Permission.READ))
def whoami(who: CallerDep) -> WhoAmI:
    """The token's owner, role and project (any valid token may ask)."""
    token = None if who.token is None else TokenOut.model_validate(who.token, from_attributes=True)
    return WhoAmI(
        actor=who.actor.name,
        token_id=who.actor.token_id,
        role=who.role,
        project=who.project,
        token=token,
    )


@router.post("/tokens", response_model=TokenCreated, openapi_extra=ADMIN)
def create_token(body: CreateToken, store: StoreDep, who: CallerDep) -> TokenCreated:
    """A new token; its secret is in this response only."""
    who.check(Permission.ADMIN)
    token, secret = store.create_token(body.role, body.project, body.name)
    return TokenCreated(token=TokenOut.model_validate(token, from_attributes=True), secret=secret)


@router.get("/tokens", response_model=list[TokenOut], openapi_extra=ADMIN)
def list_tokens(store: StoreDep, who: CallerDep, include_revoked: bool = False) -> list[Token]:
    who.check(Permission.ADMIN)
    return store.list_tokens(include_revoked)


@router.delete("/tokens/{token_id}", response_model=TokenOut, openapi_extra=ADMIN)
def revoke_token(token_id: Text, store: StoreDep, who: CallerDep) -> Token:
    who.check(Permission.ADMIN)
    return store.revoke_token(token_id)


@router.get("/audit", response_model=list[AuditRecordOut], openapi_extra=ADMIN)
def audit_log(
    store: StoreDep,
    who: CallerDep,
    since_ms: Int64 | None = None,
    after_seq: Count = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[AuditRecord]:
    """Audit records in order, from ``after_seq`` (exclusive) or ``since_ms``."""
    who.check(Permission.ADMIN)
    return store.audit_log(since_ms, after_seq, limit)


@router.get("/audit/verify", response_model=AuditVerificationOut, openapi_extra=ADMIN)
def verify_audit(store: StoreDep, who: CallerDep) -> AuditVerification:
    """Walk the hash chain and say whether, and where, it is broken."""
    who.check(Permission.ADMIN)
    return store.verify_audit()
