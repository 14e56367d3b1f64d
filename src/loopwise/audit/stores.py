"""The store that access commands act on: tokens and the audit log span every project, so they
take a whole store (one given, or one opened by its URI) rather than the current project."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loopwise.context import current
from loopwise.errors import NotAStoreError
from loopwise.store import Store, open_store, resolve_uri

__all__ = ["given_or_current", "open_existing_store"]


def given_or_current(store: Store | None) -> Store:
    """``store``, or the current context's store when it is None."""
    return store if store is not None else current().store


@contextmanager
def open_existing_store(uri: str | None = None) -> Iterator[Store]:
    """The store at ``uri`` (default: LOOPWISE_URI), closed on exit; a folder that does not
    exist is an error, not a new store."""
    resolved = resolve_uri(uri)
    if "://" not in resolved and not Path(resolved).expanduser().exists():
        raise NotAStoreError(
            f"There is no Loopwise store at {resolved}. Pass --uri (or set LOOPWISE_URI) to the "
            "store's folder or database URL.",
            path=resolved,
        )
    store = open_store(resolved)
    try:
        yield store
    finally:
        store.close()
