"""API tokens: each has a role and, optionally, the one project it may touch. The secret is
returned once, at creation; the store keeps only a salted hash."""

from __future__ import annotations

from loopwise.audit.stores import given_or_current
from loopwise.store import Role, Store, Token

__all__ = ["create_token", "list_tokens", "revoke_token"]


def create_token(
    role: Role | str, *, project: str | None = None, name: str = "", store: Store | None = None
) -> tuple[Token, str]:
    """A new token and its secret (shown this once); ``project=None`` lets it touch every project."""
    return given_or_current(store).create_token(role, project=project, name=name)


def list_tokens(*, include_revoked: bool = False, store: Store | None = None) -> list[Token]:
    """Every token (never a secret), revoked ones too with ``include_revoked``."""
    return given_or_current(store).list_tokens(include_revoked=include_revoked)


def revoke_token(token_id: str, *, store: Store | None = None) -> Token:
    """Revoke a token: its secret stops working at once."""
    return given_or_current(store).revoke_token(token_id)
