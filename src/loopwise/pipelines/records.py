"""A run's record: the JSON blob (kept in the artifact store, named by a tag on the run) that says
what a step or pipeline run read, produced and under which cache key."""

from __future__ import annotations

import json
from typing import Any

from loopwise.context import current
from loopwise.store import Run, Store

__all__ = ["KEY_TAG", "RECORD_TAG", "read_record", "run_record"]

RECORD_TAG = "loopwise.record"
"""Tag on a finished step run: the digest of its record (a JSON blob in the artifact store)."""
KEY_TAG = "loopwise.cache_key"


def read_record(store: Store, digest: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(store.artifacts.read_bytes(digest, "step record"))
    return record


def run_record(run: Run) -> dict[str, Any] | None:
    """The record of ``run`` in the current store, or None if it kept none (it was killed)."""
    digest = run.tags.get(RECORD_TAG)
    return read_record(current().store, digest) if digest else None
