"""Bad requests get a clean 4xx in the error envelope and change nothing.

Most tests drive the app in-process; those about chunked bodies and concurrency need a real
server, whose HTTP parsing and threads are part of what is tested.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopwise.server import create_app
from loopwise.store import Store, open_store

from .harness import AppTransport, serve_in_thread

BLOB = b"some artifact bytes"
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
MAX_BODY_BYTES = 1024


@dataclass
class World:
    store: Store
    run_id: str
    headers: dict[str, str]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store = open_store(tmp_path / "store")
    store.get_or_create_project("demo")
    run = store.create_run("demo", "run")
    store.artifacts.put_bytes(BLOB)
    for _ in range(3):
        store.create_model_version("demo", "model", flavour="python", artifact_digest=BLOB_DIGEST)
    secret = store.create_token("admin", name="admin")[1]
    yield World(store, run.id, {"Authorization": f"Bearer {secret}"})
    store.close()


@pytest.fixture
def client(world: World) -> Iterator[httpx.Client]:
    app = create_app(world.store, max_body_bytes=MAX_BODY_BYTES)
    with httpx.Client(
        transport=AppTransport(app), base_url="http://test", headers=world.headers
    ) as client:
        yield client


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The envelope's ``error``, after checking the status, the shape and the code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code, error
    assert error["message"]
    return error


# -- body size ------------------------------------------------------------------------------------
def test_a_body_over_the_limit_is_refused_by_its_content_length(
    world: World, client: httpx.Client
) -> None:
    tags = {f"t{i}": "x" * 100 for i in range(20)}
    response = client.post(f"/api/v1/runs/{world.run_id}/tags", json={"tags": tags})
    error = _error(response, 413, "payload_too_large")
    assert error["details"]["max_bytes"] == MAX_BODY_BYTES
    assert str(MAX_BODY_BYTES) in error["message"]
    assert world.store.get_run(world.run_id).tags == {}


def _chunks(total_bytes: int) -> Iterator[bytes]:
    yield b'{"tags": {"t": "'
    for _ in range(total_bytes // 100):
        yield b"x" * 100
    yield b'"}}'


@pytest.mark.parametrize("path", ["/api/v1/runs/{run_id}/tags", "/api/v1/projects/blobs/runs"])
def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(world: World, path: str) -> None:
    app = create_app(world.store, max_body_bytes=MAX_BODY_BYTES)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, headers=world.headers) as client:
        response = client.post(
            path.format(run_id=world.run_id),
            content=_chunks(10 * MAX_BODY_BYTES),
            headers={"Content-Type": "application/json"},
        )
        assert "content-length" not in response.request.headers
    _error(response, 413, "payload_too_large")
    assert world.store.get_run(world.run_id).tags == {}


def test_a_body_under_the_limit_is_accepted(world: World, client: httpx.Client) -> None:
    response = client.post(f"/api/v1/runs/{world.run_id}/tags", json={"tags": {"t": "v"}})
    assert response.status_code == 204, response.text
    assert world.store.get_run(world.run_id).tags == {"t": "v"}


# -- malformed requests ---------------------------------------------------------------------------
def test_malformed_json_is_a_400_naming_the_problem(world: World, client: httpx.Client) -> None:
    response = client.post(
        f"/api/v1/runs/{world.run_id}/tags",
        content=b'{"tags": {"t": "v",}}',
        headers={"Content-Type": "application/json"},
    )
    error = _error(response, 400, "invalid_argument")
    assert "JSON" in error["message"]
    assert "double quotes" in error["message"]  # what json says is wrong
    assert "character 19" in error["message"]  # and where


@pytest.mark.parametrize("depth", [65, 500, 100_000])
def test_json_nested_too_deeply_is_a_400_and_stores_nothing(world: World, depth: int) -> None:
    # Before the depth limit, 500 levels were stored and then failed to serialise: a 500 on
    # every later read of the run. Parsers give up on 100,000 levels by themselves.
    nested = "[" * depth + "]" * depth
    transport = AppTransport(create_app(world.store))
    with httpx.Client(transport=transport, base_url="http://test", headers=world.headers) as c:
        response = c.post(
            "/api/v1/projects/demo/runs",
            content=f'{{"name": "deep", "environment": {{"a": {nested}}}}}'.encode(),
            headers={"Content-Type": "application/json"},
        )
    _error(response, 400, "invalid_argument")
    assert [r.name for r in world.store.search_runs("demo")] == ["run"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/projects", {"name": "a\x00b"}, "body.name"),
        ("/api/v1/runs/{run_id}/tags", {"tags": {"t": "\ud800"}}, "body.tags.t"),
        ("/api/v1/projects/demo/runs", {"name": "r", "environment": {"k": ["\x00"]}}, "env"),
        (
            "/api/v1/runs/{run_id}/artifacts",
            {"files": [{"path": "a", "digest": BLOB_DIGEST, "size_bytes": 2**63}]},
            "body.files.0.size_bytes",
        ),
    ],
)
def test_values_no_database_can_store_are_a_400(
    world: World, client: httpx.Client, path: str, body: dict[str, Any], field: str
) -> None:
    response = client.post(
        path.format(run_id=world.run_id),
        content=json.dumps(body).encode(),  # escapes the lone surrogate as "\\ud800"
        headers={"Content-Type": "application/json"},
    )
    error = _error(response, 400, "invalid_argument")
    assert field in error["message"], error["message"]
    assert world.store.get_run(world.run_id).tags == {}


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/projects/demo/models/model/versions/99999999999999999999",
        "/api/v1/projects/demo/datasets/data/versions/-1",
        "/api/v1/dataset-versions/9223372036854775808/runs",
        "/api/v1/projects/de%00mo",
        "/api/v1/audit?after_seq=99999999999999999999",
    ],
)
def test_out_of_range_path_and_query_values_are_a_400(client: httpx.Client, path: str) -> None:
    _error(client.get(path), 400, "invalid_argument")


def test_an_unknown_run_is_a_404(client: httpx.Client) -> None:
    error = _error(client.get("/api/v1/runs/0123456789abcdef"), 404, "not_found")
    assert "0123456789abcdef" in error["message"]
    _error(client.post("/api/v1/runs/nope/tags", json={"tags": {"t": "v"}}), 404, "not_found")


# -- artifacts and blobs --------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["../x", "a/../../x", "/etc/passwd", "..\\x"])
def test_artifact_paths_outside_the_run_are_refused(
    world: World, client: httpx.Client, path: str
) -> None:
    files = [
        {"path": "fine.txt", "digest": BLOB_DIGEST, "size_bytes": len(BLOB)},
        {"path": path, "digest": BLOB_DIGEST, "size_bytes": len(BLOB)},
    ]
    response = client.post(f"/api/v1/runs/{world.run_id}/artifacts", json={"files": files})
    error = _error(response, 400, "invalid_argument")
    assert "relative artifact path" in error["message"]
    assert world.store.list_artifacts(world.run_id) == []  # not even the good one


def test_a_blob_whose_bytes_do_not_match_its_digest_is_not_stored(client: httpx.Client) -> None:
    claimed = "sha256:" + hashlib.sha256(b"what the client meant to send").hexdigest()
    response = client.put(f"/api/v1/blobs/{claimed}", content=b"what arrived")
    error = _error(response, 400, "invalid_argument")
    assert error["details"]["actual"] == "sha256:" + hashlib.sha256(b"what arrived").hexdigest()
    assert client.head(f"/api/v1/blobs/{claimed}").status_code == 404
    assert client.get(f"/api/v1/blobs/{claimed}").status_code == 404


def test_head_of_a_stored_blob_has_no_body(client: httpx.Client) -> None:
    response = client.head(f"/api/v1/blobs/{BLOB_DIGEST}")
    assert response.status_code == 200
    assert response.content == b""


# -- concurrency ----------------------------------------------------------------------------------
def test_concurrent_alias_moves_leave_one_winner_and_an_audit_record_each(world: World) -> None:
    path = "/api/v1/projects/demo/models/model/aliases/prod"
    versions = [1 + i % 3 for i in range(20)]
    results: list[tuple[int, int, dict[str, Any]]] = []
    lock = threading.Lock()
    start = threading.Barrier(len(versions))
    audit_before = len(world.store.audit_log(limit=10_000))
    with serve_in_thread(create_app(world.store)) as url:

        def move(version: int) -> None:
            with httpx.Client(base_url=url, headers=world.headers, timeout=30) as client:
                start.wait()
                response = client.put(path, json={"version": version})
            with lock:
                results.append((version, response.status_code, response.json()))

        threads = [threading.Thread(target=move, args=(v,)) for v in versions]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(results) == len(versions)
    for _, status, body in results:
        assert status == 200 or 400 <= status < 500, body
        if status != 200:
            assert set(body["error"]) == {"code", "message", "details"}
    moved = [(version, body) for version, status, body in results if status == 200]
    assert moved
    assert world.store.resolve_alias("demo", "model", "prod") in {v for v, _ in moved}
    # Each move saw the one before it: the chain of ``previous`` values has no gaps or forks.
    previous = [body["previous"] for _, body in moved]
    assert previous.count(None) == 1
    records = world.store.audit_log(limit=10_000)[audit_before:]
    alias_sets = [r for r in records if r.action == "alias.set"]
    assert len(alias_sets) == len(moved)
    assert sorted(r.after["version"] for r in alias_sets if r.after) == sorted(v for v, _ in moved)
    assert world.store.verify_audit().ok


# -- routing --------------------------------------------------------------------------------------
def test_an_unknown_route_is_a_404_in_the_envelope(client: httpx.Client) -> None:
    error = _error(client.get("/api/v1/no-such-thing"), 404, "not_found")
    assert "/api/v1/no-such-thing" in error["message"]


def test_a_wrong_method_is_a_405_in_the_envelope(client: httpx.Client) -> None:
    response = client.patch("/api/v1/projects")
    _error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]
