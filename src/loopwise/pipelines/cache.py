"""The cache key of a step execution, and the store lookup that reuses a finished one.

The key covers the step's code (its source, the project functions it calls, the versions of
the packages it uses: ``fingerprint.py``), the content hash of every input and the seed. A hit
is a finished run with that key whose outputs are all still in the store, so a cached result
is a run's own record, never a file that could go stale.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from loopwise.pipelines.execute import KEY_TAG, RECORD_TAG, read_record
from loopwise.pipelines.ports import value_hash
from loopwise.store import Store

__all__ = ["KEY_VERSION", "cache_key", "input_hash", "lookup"]

KEY_VERSION = 1
"""Bumped when what goes into a key changes, so old entries stop matching."""


def input_hash(spec: Any) -> str:
    """The content hash of one input as the task carries it (see ``StepTask.inputs``)."""
    form = spec[0]
    if form == "constant":
        return value_hash(spec[1])
    if form == "stored":
        return str(spec[1]["hash"])
    items = [[key, input_hash(item)] for key, item in spec[2]]
    return value_hash({"gather": items, "as_dict": bool(spec[1])})


def cache_key(
    step: str, code: Mapping[str, Any], inputs: Mapping[str, Any], seed: int
) -> tuple[str, dict[str, Any]]:
    """The key and the parts it was made of (kept in the step's record to explain a miss)."""
    parts: dict[str, Any] = {
        "version": KEY_VERSION,
        "step": step,
        "code": dict(code),
        "inputs": {port: input_hash(spec) for port, spec in sorted(inputs.items())},
        "seed": seed,
    }
    hashed = {**parts, "code": parts["code"]["digest"]}
    digest = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()
    return digest, parts


def _outputs_present(store: Store, record: Mapping[str, Any]) -> bool:
    for stored in record.get("outputs", {}).values():
        kind = stored.get("kind")
        if kind in ("model", "artifact") and not store.artifacts.exists(stored["hash"]):
            return False
        if kind == "value" and "blob" in stored and not store.artifacts.exists(stored["blob"]):
            return False
    return True


def lookup(
    store: Store, project: str, key: str, parent_run: str | None = None
) -> dict[str, Any] | None:
    """The record of the latest finished run with ``key`` whose outputs still exist, or None.

    ``parent_run`` limits the search to the steps of one pipeline run (``resume`` reuses those
    even for steps that opted out of the cache).
    """
    query = f"tags.`{KEY_TAG}` = '{key}' and status = 'FINISHED'"
    if parent_run is not None:
        query += f" and tags.`loopwise.parent` = '{parent_run}'"
    for run in store.search_runs(project, query, ["start_time desc"], 5):
        digest = run.tags.get(RECORD_TAG)
        if digest is None or not store.artifacts.exists(digest):
            continue
        record = read_record(store, digest)
        if _outputs_present(store, record):
            record["run_id"] = run.id
            return record
    return None
