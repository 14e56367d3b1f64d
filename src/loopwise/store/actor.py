"""Who is acting: the name the audit log records for each change.

In embedded mode that is the operating-system user; the control plane sets the token's actor for
each request with :func:`acting_as`, and store methods read :func:`current_actor` when they write.
"""

from __future__ import annotations

import functools
import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["Actor", "acting_as", "current_actor"]


@dataclass(frozen=True)
class Actor:
    name: str
    token_id: str | None = None


_actor: ContextVar[Actor | None] = ContextVar("loopwise_actor", default=None)


@functools.cache
def _os_user() -> str:  # asked once: it reads the environment and the password database
    try:
        return getpass.getuser() or "unknown"
    except Exception:  # no login name, no USER variable and no passwd entry (some containers)
        return "unknown"


def current_actor() -> Actor:
    """The actor set by :func:`acting_as`, else the operating-system user."""
    actor = _actor.get()
    return actor if actor is not None else Actor(_os_user())


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    """Attribute the changes made inside the block (in this thread or task) to ``actor``."""
    token = _actor.set(actor)
    try:
        yield actor
    finally:
        _actor.reset(token)
