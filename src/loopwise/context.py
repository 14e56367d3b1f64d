"""The store and project that SDK calls use unless told otherwise.

``lw.init(project=..., uri=...)`` sets them; any SDK call before ``init`` opens the default store
(``LOOPWISE_URI`` or ``./.loopwise``) and project (``LOOPWISE_PROJECT`` or ``default``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from loopwise.store import Store, open_store, resolve_uri
from loopwise.store.checks import check_name

__all__ = ["Context", "current", "init", "shutdown", "using"]

DEFAULT_PROJECT = "default"


@dataclass(frozen=True)
class Context:
    store: Store
    project: str
    uri: str


_lock = threading.RLock()
_current: Context | None = None


def init(
    project: str | None = None, uri: str | os.PathLike[str] | None = None, *, create: bool = True
) -> Context:
    """Open the store at ``uri`` and make ``project`` the current one.

    The project is created if missing, unless ``create`` is false: then an unknown project is a
    NotFoundError that lists the existing ones (what read-only commands want).
    """
    global _current
    project = project or os.environ.get("LOOPWISE_PROJECT") or DEFAULT_PROJECT
    check_name(project, "project")
    resolved = resolve_uri(uri)
    with _lock:
        if _current is not None and _current.uri == resolved:
            store = _current.store
        else:
            shutdown()
            store = open_store(resolved)
        if create:
            store.get_or_create_project(project)
        else:
            store.get_project(project)
        _current = Context(store=store, project=project, uri=resolved)
        return _current


def current() -> Context:
    """The current context, opening the default one on first use."""
    with _lock:
        return _current if _current is not None else init()


def shutdown() -> None:
    """End runs still open, flush spooled metrics and close the store (also done at exit)."""
    global _current
    with _lock:
        if _current is None:
            return
        # Runs can be open only if tracking was imported; importing it here, possibly at exit,
        # would load pandas when Python no longer accepts new atexit hooks.
        tracking = sys.modules.get("loopwise.tracking.run")
        if tracking is not None:
            tracking.end_open_runs()
        _current.store.close()
        _current = None


atexit.register(shutdown)


@contextlib.contextmanager
def using(store: Store, project: str) -> Iterator[Context]:
    """Make ``store`` and ``project`` the current context for the block, then restore the one
    before (for code that serves several projects, such as the server's autopilot loop). The
    context is process-wide: do not use it from two threads at once."""
    global _current
    with _lock:
        before = _current
        _current = Context(store=store, project=project, uri=store.uri)
    try:
        yield _current
    finally:
        with _lock:
            _current = before
