"""The cache key of a step execution, and the store lookup that reuses a finished one.

The key covers the step's code (its source, the project functions it calls, the versions of
the packages it uses: ``fingerprint.py``), the content hash of every input and the seed. A hit
is a finished run with that key whose outputs are all still in the store, so a cached result
is a run's own record, never a file that could go stale.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loopwise.errors import InvalidArgumentError, NotFoundError
from loopwise.pipelines.ports import value_hash
from loopwise.pipelines.records import KEY_TAG, RECORD_TAG, read_record
from loopwise.store import RunStatus, Store
from loopwise.store.artifacts import sha256_file

__all__ = ["KEY_VERSION", "cache_key", "input_hash", "lookup", "path_hash"]

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


def path_hash(path: str) -> str:
    """The content hash of a file, or of a folder's files and their relative paths."""
    root = Path(path)
    if root.is_file():
        return sha256_file(root)
    if not root.is_dir():
        raise InvalidArgumentError(
            f"Expected a file or folder at {path!r} for a Path input, found nothing there. "
            "Check that it was not moved or deleted since the pipeline was built.",
            parameter="path",
        )
    files = sorted(p for p in root.rglob("*") if p.is_file())
    listing = {p.relative_to(root).as_posix(): sha256_file(p) for p in files}
    return value_hash({"folder": listing})


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


def _tree_present(store: Store, digest: str) -> bool:
    """A stored folder is usable only if its manifest and every file in it are still there."""
    if not store.artifacts.exists(digest):
        return False
    files = store.artifacts.read_manifest(digest)
    return all(store.artifacts.exists(blob) for blob, _ in files.values())


def _outputs_present(store: Store, project: str, record: Mapping[str, Any]) -> bool:
    for stored in record.get("outputs", {}).values():
        kind = stored.get("kind")
        try:
            if kind in ("model", "artifact") and not _tree_present(store, stored["hash"]):
                return False
            if kind == "value" and "blob" in stored and not store.artifacts.exists(stored["blob"]):
                return False
            if kind == "dataset":
                version = store.get_dataset_version(project, stored["name"], stored["version"])
                if not store.artifacts.exists(version.artifact_digest):
                    return False
            if kind == "model_version":
                registered = store.get_model_version(project, stored["name"], stored["version"])
                if not _tree_present(store, registered.artifact_digest):
                    return False
        except NotFoundError:  # the dataset or model version was deleted
            return False
    return True


def lookup(
    store: Store, project: str, key: str, runs: Sequence[str] | None = None
) -> dict[str, Any] | None:
    """The record of the latest finished run with ``key`` whose outputs still exist, or None.

    ``runs`` limits the search to those step runs: ``resume`` reuses the steps its pipeline run
    used (which an earlier run may have made), even steps that opted out of the cache.
    """
    if runs is None:
        query = f"tags.`{KEY_TAG}` = '{key}' and status = 'FINISHED'"
        found = store.search_runs(project, query, ["start_time desc"], 5)
    else:
        found = []
        for run_id in runs:
            with contextlib.suppress(NotFoundError):
                found.append(store.get_run(run_id))
        found = [r for r in found if r.status is RunStatus.FINISHED and r.tags.get(KEY_TAG) == key]
    for run in found:
        digest = run.tags.get(RECORD_TAG)
        if digest is None or not store.artifacts.exists(digest):
            continue
        record = read_record(store, digest)
        if _outputs_present(store, project, record):
            record["run_id"] = run.id
            return record
    return None
