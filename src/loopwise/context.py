"""The store and project that SDK calls use unless told otherwise.

``lw.init(project=..., uri=...)`` sets them; any SDK call before ``init`` opens the default store
(``LOOPWISE_URI`` or ``./.loopwise``) and project (``LOOPWISE_PROJECT`` or ``default``). The
command line chooses its project by what the store holds instead (``init_existing``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from loopwise.store import Store, open_store, resolve_uri
from loopwise.store.checks import check_name

__all__ = [
    "Context",
    "current",
    "init",
    "init_existing",
    "opened",
    "remember_project",
    "remembered_project",
    "shutdown",
    "using",
]

DEFAULT_PROJECT = "default"
LAST_PROJECT_FILE = "last-project"
"""In a folder store: the project the command line last named there (see ``init_existing``)."""


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
    name = project or os.environ.get("LOOPWISE_PROJECT") or DEFAULT_PROJECT
    check_name(name, "project")
    return _enter(resolve_uri(uri), lambda store: name, create=create)


def init_existing(
    project: str | None = None, uri: str | os.PathLike[str] | None = None, *, create: bool = False
) -> Context:
    """Open the store at ``uri`` and make a project current, chosen as the command line chooses:
    ``project``, else ``LOOPWISE_PROJECT``, else the store's only project, else the one last
    named on this store (``remember_project``), else ``default``.

    A project named here is remembered as the last one named. An unknown project is a
    NotFoundError that lists the existing ones, unless ``create`` (commands that write) creates it.
    """
    named = project or os.environ.get("LOOPWISE_PROJECT")
    if named is not None:
        check_name(named, "project")
    resolved = resolve_uri(uri)
    context = _enter(resolved, lambda store: named or _unnamed_choice(store), create=create)
    if named is not None:
        remember_project(resolved, named)
    return context


def _unnamed_choice(store: Store) -> str:
    """The project meant when none is named: the only one, else the last named, else default."""
    names = [p.name for p in store.list_projects()]
    if len(names) == 1:
        return names[0]
    last = remembered_project(store.uri)
    return last if last in names else DEFAULT_PROJECT


def _enter(resolved: str, choose: Callable[[Store], str], *, create: bool) -> Context:
    """Make the store at ``resolved`` (reused when it is the current one) and the project
    ``choose`` picks from it the current context; a store opened here is closed on failure."""
    global _current
    with _lock:
        reused = _current is not None and _current.uri == resolved
        if _current is not None and reused:
            store = _current.store
        else:
            shutdown()
            store = open_store(resolved)
        try:
            project = choose(store)
            if create:
                store.get_or_create_project(project)
            else:
                store.get_project(project)
        except BaseException:
            if not reused:
                store.close()
            raise
        _current = Context(store=store, project=project, uri=resolved)
        return _current


def _last_project_file(uri: str) -> Path | None:
    """Where a folder store keeps the project last named on it; None for database URLs and
    servers, which are shared by people who each mean their own project (they keep nothing)."""
    if "://" in uri:
        return None
    return Path(uri).expanduser() / LAST_PROJECT_FILE


def remembered_project(uri: str | os.PathLike[str] | None = None) -> str | None:
    """The project last named on the folder store at ``uri`` (``remember_project``), if any."""
    path = _last_project_file(resolve_uri(uri))
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:  # never remembered, or unreadable: nothing to go on
        return None


def remember_project(uri: str | os.PathLike[str] | None, project: str) -> None:
    """Note ``project`` as the one last named on the store at ``uri``, in a small file inside a
    folder store (replaced atomically); database URLs and servers keep nothing."""
    path = _last_project_file(resolve_uri(uri))
    if path is None or not path.parent.is_dir() or remembered_project(uri) == project:
        return
    partial = path.with_name(f".{LAST_PROJECT_FILE}.{os.getpid()}")
    try:
        partial.write_text(project + "\n", encoding="utf-8")
        os.replace(partial, path)
    except OSError:  # a read-only store: it still works, only without the memory
        partial.unlink(missing_ok=True)


def opened() -> Context | None:
    """The current context if one is open, without opening one (what a message may name)."""
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
