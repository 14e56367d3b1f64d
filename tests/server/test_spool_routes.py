"""The spool routes: a spool belongs to a project, and a project-scoped token sees only its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loopwise.server import create_app
from loopwise.store import MetricEntry, Store, open_store

from .harness import AppTransport

T0_MS = 1_700_000_000_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(tmp_path / "store")
    yield store
    store.close()


def _client(store: Store, secret: str) -> httpx.Client:
    return httpx.Client(
        transport=AppTransport(create_app(store)),
        base_url="http://localhost/api/v1",
        headers={"Authorization": f"Bearer {secret}"},
    )


def test_a_scoped_token_sees_and_changes_only_its_projects_spools(store: Store) -> None:
    for project in ("alpha", "beta"):
        store.get_or_create_project(project)
    beta_run = store.create_run("beta", "r").id
    alpha_run = store.create_run("alpha", "r").id
    store.write_spooled_metrics([MetricEntry(beta_run, "m", 1.0, 0, T0_MS)], "beta-spool", 1)
    _, secret = store.create_token("editor", project="alpha", name="alpha-writer")
    with _client(store, secret) as alpha:
        assert alpha.get("/spools/beta-spool").status_code == 404
        assert alpha.get("/spools/beta-spool", params={"project": "beta"}).status_code == 403
        assert alpha.delete("/spools/beta-spool").status_code == 404
        # Nor can it move beta's progress with records of its own project.
        entries = [{"run_id": alpha_run, "key": "m", "value": 1, "timestamp_ms": T0_MS}]
        body = {"entries": entries, "spool_id": "beta-spool", "upto_seq": 2}
        assert alpha.post("/metrics", json=body).status_code == 404
        assert store.spool_progress("beta-spool") == 1
        # Its own spools work as before.
        body["spool_id"] = "alpha-spool"
        body["upto_seq"] = 1
        assert alpha.post("/metrics", json=body).status_code == 204
        assert alpha.get("/spools/alpha-spool").json()["committed_seq"] == 1
        assert alpha.delete("/spools/alpha-spool").status_code == 204
    assert [r.action for r in store.audit_log()][-2:] == ["run.metrics", "spool.forget"]


def test_an_empty_batch_cannot_move_progress_through_the_api(store: Store) -> None:
    store.get_or_create_project("alpha")
    run = store.create_run("alpha", "r").id
    store.write_spooled_metrics([MetricEntry(run, "m", 1.0, 0, T0_MS)], "spool-1", 1)
    _, secret = store.create_token("editor", name="writer")
    with _client(store, secret) as client:
        answer = client.post(
            "/metrics", json={"entries": [], "spool_id": "spool-1", "upto_seq": 10**12}
        )
        assert answer.status_code == 400
        assert "empty batch cannot move" in answer.json()["error"]["message"]
    assert store.spool_progress("spool-1") == 1
