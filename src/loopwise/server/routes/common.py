"""What every route module shares: the store dependency and project lookups for ids."""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Annotated

from fastapi import Depends, Request

from loopwise.server.blob_access import BlobAccess
from loopwise.store import Store

__all__ = ["BlobAccessDep", "StoreDep", "blob_access", "get_store", "run_project"]


def blob_access(request: Request) -> BlobAccess:
    """The app's record of which blobs project-scoped tokens may read and refer to."""
    access: BlobAccess = request.app.state.blob_access
    return access


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(get_store)]
BlobAccessDep = Annotated[BlobAccess, Depends(blob_access)]

_RUN_PROJECTS: weakref.WeakKeyDictionary[Store, OrderedDict[str, str]] = weakref.WeakKeyDictionary()
_RUN_PROJECTS_MAX = 100_000
_lock = threading.Lock()


def run_project(store: Store, run_id: str) -> str:
    """The project a run belongs to (never changes, so it is remembered); 404 if unknown."""
    with _lock:
        known = _RUN_PROJECTS.setdefault(store, OrderedDict())
        project = known.get(run_id)
        if project is not None:
            known.move_to_end(run_id)
            return project
    project = store.get_run(run_id).project
    with _lock:
        known[run_id] = project
        if len(known) > _RUN_PROJECTS_MAX:
            known.popitem(last=False)
    return project
