"""API tokens and the audit log, as every ``Store`` backend must provide them.

Written against the abstract interface only; a backend's test class inherits ``AccessConformance``
beside ``StoreConformance`` and provides the same ``store`` fixture (a fresh, empty store).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopwise.errors import (
    AuthenticationError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
)
from loopwise.store import MetricEntry, RunStatus, Store
from loopwise.store.entities import AuditRecord, Role

T0_MS = 1_700_000_000_000
DIGEST = "sha256:" + "ab" * 32
SECRET = re.compile(r"^lw_([0-9a-f]{12})_[A-Za-z0-9_\-]{43}$")
GENESIS = "0" * 64


def _last_seq(store: Store) -> int:
    seq = 0
    while page := store.audit_log(after_seq=seq, limit=1000):
        seq = page[-1].seq
    return seq


def _changes(records: list[AuditRecord]) -> list[tuple[Any, ...]]:
    return [(r.action, r.project, r.target, r.before, r.after) for r in records]


class AccessConformance:
    """Generic checks of tokens and the audit log; subclasses provide the ``store`` fixture."""

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        raise NotImplementedError("A backend's test class must override the `store` fixture.")

    @pytest.fixture
    def since(self, store: Store) -> Iterator[int]:
        """A project and a run exist; yields the last record number before the test's changes."""
        store.get_or_create_project("proj")
        store.create_run("proj", "setup")
        yield _last_seq(store)

    def _run(self, store: Store) -> str:
        return store.search_runs("proj", "attributes.name = 'setup'")[0].id

    # -- tokens ---------------------------------------------------------------------------------
    def test_create_token_shows_the_secret_once(self, store: Store) -> None:
        before_ms = int(time.time() * 1000)
        token, secret = store.create_token("admin", name="ops")
        match = SECRET.match(secret)
        assert match is not None, secret
        assert token.id == f"tok_{match.group(1)}"
        assert (token.name, token.role, token.project, token.revoked_ms) == (
            "ops",
            Role.ADMIN,
            None,
            None,
        )
        assert before_ms - 1000 <= token.created_ms <= int(time.time() * 1000) + 1000
        assert token.created_by
        assert store.list_tokens() == [token]
        assert store.authenticate(secret) == token
        assert secret not in repr(store.list_tokens(include_revoked=True))

    def test_secrets_differ_and_names_default_to_the_id(self, store: Store) -> None:
        first, first_secret = store.create_token(Role.VIEWER)
        second, second_secret = store.create_token("viewer")
        assert first.id != second.id and first_secret != second_secret
        assert first.name == first.id
        assert store.authenticate(second_secret) == second

    def test_project_scoped_token(self, store: Store) -> None:
        store.get_or_create_project("alpha")
        token, secret = store.create_token("editor", project="alpha", name="ci")
        assert token.project == "alpha"
        assert store.authenticate(secret).project == "alpha"

    def test_token_for_unknown_project_lists_projects(self, store: Store) -> None:
        store.get_or_create_project("alpha")
        with pytest.raises(NotFoundError) as info:
            store.create_token("editor", project="nope")
        assert "'nope'" in str(info.value) and "'alpha'" in str(info.value)
        assert store.list_tokens() == []

    @pytest.mark.parametrize("role", ["owner", "", "ADMIN", 3, None])
    def test_invalid_role_lists_the_roles(self, store: Store, role: object) -> None:
        with pytest.raises(InvalidArgumentError) as info:
            store.create_token(role)  # type: ignore[arg-type]
        for allowed in ("admin", "editor", "viewer"):
            assert allowed in str(info.value)
        assert store.list_tokens() == []

    @pytest.mark.parametrize("name", ["has space", "a/b", "x" * 201])
    def test_invalid_token_name(self, store: Store, name: str) -> None:
        with pytest.raises(InvalidArgumentError, match="token name"):
            store.create_token("viewer", name=name)

    def test_bad_secrets_get_one_answer(self, store: Store) -> None:
        token, secret = store.create_token("viewer")
        random_part = secret.split("_", 2)[2]
        wrong_char = "A" if secret[-1] != "A" else "B"
        unknown_id = "lw_000000000000_" + random_part
        attempts: list[object] = [
            "",
            "nope",
            "lw_",
            secret[:-1],
            secret[:-1] + wrong_char,
            secret + "x",
            unknown_id,
            secret.replace("lw_", "xx_", 1),
            42,
            None,
        ]
        messages = set()
        for attempt in attempts:
            with pytest.raises(AuthenticationError) as info:
                store.authenticate(attempt)  # type: ignore[arg-type]
            messages.add(str(info.value))
        assert len(messages) == 1  # an unknown id and a wrong secret are indistinguishable
        assert token.id not in messages.pop()

    def test_revoked_token_no_longer_authenticates(self, store: Store) -> None:
        token, secret = store.create_token("editor", name="old")
        keep, keep_secret = store.create_token("viewer", name="keep")
        revoked = store.revoke_token(token.id)
        assert revoked.id == token.id and revoked.revoked_ms is not None
        with pytest.raises(AuthenticationError) as info:
            store.authenticate(secret)
        with pytest.raises(AuthenticationError) as unknown:
            store.authenticate("lw_000000000000_" + "A" * 43)
        assert str(info.value) == str(unknown.value)
        assert store.list_tokens() == [keep]
        assert store.list_tokens(include_revoked=True) == [revoked, keep]
        assert store.revoke_token(token.id) == revoked  # again: nothing changes
        assert store.authenticate(keep_secret) == keep

    def test_revoke_unknown_token_lists_ids(self, store: Store) -> None:
        token, _ = store.create_token("viewer")
        with pytest.raises(NotFoundError) as info:
            store.revoke_token("tok_000000000000")
        assert token.id in str(info.value)

    # -- what the audit log records -------------------------------------------------------------
    def test_project_creation_is_recorded_once(self, store: Store) -> None:
        store.get_or_create_project("alpha")
        store.get_or_create_project("alpha")
        assert _changes(store.audit_log()) == [
            ("project.create", "alpha", "project:alpha", None, {"name": "alpha"})
        ]

    def test_run_changes_are_recorded(self, store: Store, since: int) -> None:
        run = store.create_run("proj", "r", tags={"team": "core"})
        store.set_tags(run.id, {"team": "core", "stage": "dev"})  # only 'stage' changes
        store.set_tags(run.id, {"stage": "dev"})  # nothing changes: no record
        store.set_tags(run.id, {"stage": "prod"})
        store.log_params(run.id, {"lr": 0.1, "depth": 6})  # type: ignore[dict-item]
        store.log_params(run.id, {"lr": 0.1})  # type: ignore[dict-item]  # already so: no record
        store.end_run(run.id, RunStatus.FINISHED)
        target = f"run:{run.id}"
        assert _changes(store.audit_log(after_seq=since)) == [
            ("run.create", "proj", target, None, {"name": "r", "tags": {"team": "core"}}),
            ("run.tags", "proj", target, {"stage": None}, {"stage": "dev"}),
            ("run.tags", "proj", target, {"stage": "dev"}, {"stage": "prod"}),
            ("run.params", "proj", target, None, {"depth": "6", "lr": "0.1"}),
            ("run.end", "proj", target, {"status": "RUNNING"}, {"status": "FINISHED"}),
        ]

    def test_metric_batches_are_recorded_once_per_batch(self, store: Store, since: int) -> None:
        run_id = self._run(store)
        store.log_metrics([MetricEntry(run_id, f"m{k:02d}", 1.0, 0, T0_MS) for k in range(60)])
        store.log_metrics([MetricEntry(run_id, "loss", 0.5, 1, T0_MS)])
        records = store.audit_log(after_seq=since)
        assert [(r.action, r.project, r.target, r.before) for r in records] == [
            ("run.metrics", "proj", f"run:{run_id}", None)
        ] * 2
        assert records[0].after == {
            "run_ids": [run_id],
            "count": 60,
            "keys": [f"m{k:02d}" for k in range(50)],  # at most 50 keys are named
        }
        assert records[1].after == {"run_ids": [run_id], "count": 1, "keys": ["loss"]}

    def test_spooled_metrics_are_recorded_when_written(self, store: Store, since: int) -> None:
        run_id = self._run(store)
        for step in range(5):
            store.log_metric_async(MetricEntry(run_id, "acc", step / 10, step, T0_MS))
        store.flush()
        records = store.audit_log(after_seq=since)
        assert {r.action for r in records} == {"run.metrics"}
        assert sum(r.after["count"] for r in records if r.after) == 5
        assert all(r.after and r.after["keys"] == ["acc"] for r in records)

    def test_spool_progress_and_forgetting_it_are_recorded(self, store: Store, since: int) -> None:
        run_id = self._run(store)
        store.write_spooled_metrics([MetricEntry(run_id, "m", 1.0, 0, T0_MS)], "spool-1", 1)
        store.forget_spool("spool-1")
        store.forget_spool("spool-1")  # gone already: no change, no record
        records = store.audit_log(after_seq=since)
        assert [(r.action, r.project, r.target, r.before) for r in records] == [
            ("run.metrics", "proj", f"run:{run_id}", None),
            ("spool.forget", "proj", "spool:spool-1", {"committed_seq": 1}),
        ]
        assert records[0].after is not None
        assert (records[0].after["spool_id"], records[0].after["upto_seq"]) == ("spool-1", 1)

    def test_artifacts_are_recorded_with_their_digests(
        self, store: Store, since: int, tmp_path: Path
    ) -> None:
        run_id = self._run(store)
        path = tmp_path / "model.txt"
        path.write_bytes(b"v1")
        [first] = store.log_artifact(run_id, path)
        store.log_artifact(run_id, path)  # the same bytes again: nothing changes
        path.write_bytes(b"v2")
        [second] = store.log_artifact(run_id, path)
        assert _changes(store.audit_log(after_seq=since)) == [
            (
                "run.artifact",
                "proj",
                f"run:{run_id}",
                None,
                {"files": [{"path": "model.txt", "digest": first.digest}], "count": 1},
            ),
            (
                "run.artifact",
                "proj",
                f"run:{run_id}",
                {"files": [{"path": "model.txt", "digest": first.digest}]},
                {"files": [{"path": "model.txt", "digest": second.digest}], "count": 1},
            ),
        ]

    def test_datasets_are_recorded_when_created_and_linked(self, store: Store, since: int) -> None:
        run_id = self._run(store)
        kwargs: dict[str, Any] = {
            "content_hash": "sha256:" + "11" * 32,
            "artifact_digest": DIGEST,
            "num_rows": 3,
            "schema": {"x": "int64"},
        }
        version, created = store.create_dataset_version("proj", "acs", **kwargs)
        assert created
        store.create_dataset_version("proj", "acs", **kwargs)  # same content: no new version
        store.link_dataset(run_id, version.id)
        store.link_dataset(run_id, version.id)  # already linked
        assert _changes(store.audit_log(after_seq=since)) == [
            (
                "dataset.create",
                "proj",
                "dataset:acs/1",
                None,
                {"content_hash": kwargs["content_hash"], "artifact_digest": DIGEST, "rows": 3},
            ),
            ("dataset.link", "proj", f"run:{run_id}", None, {"dataset": "acs/1", "role": "input"}),
        ]

    def test_model_versions_and_alias_moves_are_recorded(self, store: Store, since: int) -> None:
        for _ in range(2):
            store.create_model_version("proj", "clf", flavour="sklearn", artifact_digest=DIGEST)
        assert store.set_alias("proj", "clf", "production", 1) is None
        assert store.set_alias("proj", "clf", "production", 2) == 1
        assert store.delete_alias("proj", "clf", "production") == 2
        version = {"flavour": "sklearn", "artifact_digest": DIGEST, "run_id": None}
        alias = "model:clf@production"
        assert _changes(store.audit_log(after_seq=since)) == [
            ("model_version.create", "proj", "model:clf/1", None, version),
            ("model_version.create", "proj", "model:clf/2", None, version),
            ("alias.set", "proj", alias, None, {"version": 1}),
            ("alias.set", "proj", alias, {"version": 1}, {"version": 2}),
            ("alias.delete", "proj", alias, {"version": 2}, None),
        ]

    def test_token_changes_are_recorded_without_the_secret(self, store: Store) -> None:
        store.get_or_create_project("alpha")
        token, secret = store.create_token("editor", project="alpha", name="ci")
        store.revoke_token(token.id)
        records = store.audit_log(after_seq=1)
        assert [(r.action, r.project, r.target, r.before) for r in records] == [
            ("token.create", "alpha", f"token:{token.id}", None),
            ("token.revoke", "alpha", f"token:{token.id}", {"revoked_ms": None}),
        ]
        assert records[0].after == {"name": "ci", "role": "editor", "project": "alpha"}
        revoked = store.list_tokens(include_revoked=True)[0]
        assert records[1].after == {"revoked_ms": revoked.revoked_ms}
        text = json.dumps([dataclasses.asdict(r) for r in store.audit_log()])
        assert secret not in text and secret.split("_", 2)[2] not in text

    def test_refused_changes_leave_no_record(self, store: Store, since: int) -> None:
        run_id = self._run(store)
        store.log_params(run_id, {"lr": "0.1"})
        store.create_model_version("proj", "clf", flavour="sklearn", artifact_digest=DIGEST)
        seq = _last_seq(store)
        refusals: list[tuple[type[Exception], Any]] = [
            (ConflictError, lambda: store.log_params(run_id, {"lr": "0.2", "new": "1"})),
            (NotFoundError, lambda: store.set_alias("proj", "clf", "production", 9)),
            (NotFoundError, lambda: store.delete_alias("proj", "clf", "nope")),
            (NotFoundError, lambda: store.create_run("nope", "r")),
            (InvalidArgumentError, lambda: store.end_run(run_id, "DONE")),  # type: ignore[arg-type]
            (NotFoundError, lambda: store.link_dataset(run_id, 12345)),
            (NotFoundError, lambda: store.create_token("viewer", project="nope")),
            (NotFoundError, lambda: store.revoke_token("tok_000000000000")),
        ]
        for error, change in refusals:
            with pytest.raises(error):
                change()
        assert store.audit_log(after_seq=seq) == []
        assert store.get_run(run_id).params == {"lr": "0.1"}

    # -- the chain ------------------------------------------------------------------------------
    def test_records_are_numbered_and_chained(self, store: Store, since: int) -> None:
        run_id = self._run(store)
        store.set_tags(run_id, {"a": "1"})
        store.end_run(run_id, RunStatus.FAILED)
        records = store.audit_log()
        assert [r.seq for r in records] == list(range(1, len(records) + 1))
        assert records[0].prev_hash == GENESIS
        for previous, record in itertools.pairwise(records):
            assert record.prev_hash == previous.hash
        assert len({r.hash for r in records}) == len(records)
        now_ms = int(time.time() * 1000)
        for record in records:
            assert record.actor and isinstance(record.actor, str)
            assert now_ms - 600_000 <= record.time_ms <= now_ms + 1000
        assert [r.time_ms for r in records] == sorted(r.time_ms for r in records)

    def test_audit_log_pages_and_filters(self, store: Store) -> None:
        for name in ("a", "b", "c", "d", "e"):
            store.get_or_create_project(name)
        assert [r.seq for r in store.audit_log(limit=2)] == [1, 2]
        assert [r.seq for r in store.audit_log(after_seq=2, limit=2)] == [3, 4]
        assert [r.seq for r in store.audit_log(after_seq=4)] == [5]
        assert store.audit_log(after_seq=5) == []
        records = store.audit_log()
        since_ms = records[2].time_ms
        recent = store.audit_log(since_ms=since_ms)
        assert {3, 4, 5} <= {r.seq for r in recent}
        assert all(r.time_ms >= since_ms for r in recent)
        assert store.audit_log(since_ms=records[-1].time_ms + 60_000) == []
        assert len(store.audit_log(since_ms=0)) == 5

    @pytest.mark.parametrize("limit", [0, -1, 10**9])
    def test_audit_log_rejects_a_bad_limit(self, store: Store, limit: int) -> None:
        with pytest.raises(InvalidArgumentError, match="limit"):
            store.audit_log(limit=limit)

    def test_verify_an_empty_log(self, store: Store) -> None:
        result = store.verify_audit()
        assert (result.ok, result.records, result.head_hash, result.broken_seq) == (
            True,
            0,
            None,
            None,
        )

    def test_verify_an_intact_log(self, store: Store, since: int) -> None:
        store.create_model_version("proj", "clf", flavour="sklearn", artifact_digest=DIGEST)
        store.set_alias("proj", "clf", "production", 1)
        records = store.audit_log()
        result = store.verify_audit()
        assert result.ok, result.reason
        assert result.records == len(records) == records[-1].seq
        assert result.head_hash == records[-1].hash
        assert result.broken_seq is None
        assert "intact" in result.reason
