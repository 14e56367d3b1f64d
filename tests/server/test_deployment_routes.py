"""The deployment routes over raw HTTP: JSON shapes, and bad requests in the one error envelope.

The remote store checks plans before sending them, so these requests are what another client
(curl, a script in another language) could send.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopwise.server import create_app
from loopwise.store import open_store

from .harness import AppTransport

DIGEST = "sha256:" + "ab" * 32
ROOT = "/api/v1/projects/demo/deployments"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.Client]:
    store = open_store(tmp_path / "store")
    store.get_or_create_project("demo")
    for _ in range(3):
        store.create_model_version("demo", "model", flavour="python", artifact_digest=DIGEST)
    secret = store.create_token("editor", name="editor")[1]
    headers = {"Authorization": f"Bearer {secret}"}
    transport = AppTransport(create_app(store))
    with httpx.Client(transport=transport, base_url="http://test", headers=headers) as client:
        yield client
    store.close()


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"code", "message", "details"} and error["code"] == code, error
    return error


def _create(client: httpx.Client, plan: dict[str, Any], name: str = "prod") -> httpx.Response:
    return client.post(ROOT, json={"name": name, "model": "model", "plan": plan})


def test_the_json_a_client_sees(client: httpx.Client) -> None:
    created = _create(client, {"shares": {"2": 5, "1": 95}})
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["plan"] == {"shares": {"1": 95, "2": 5}, "shadow": []}
    assert (body["name"], body["model"], body["revision"]) == ("prod", "model", 1)
    changed = client.put(
        f"{ROOT}/prod/plan",
        json={"plan": {"shares": {"2": 100}, "shadow": [3]}, "reason": "promote"},
    )
    assert changed.json()["plan"] == {"shares": {"2": 100}, "shadow": [3]}
    back = client.post(f"{ROOT}/prod/rollback", json={"reason": "errors", "expected_revision": 2})
    assert back.json()["revision"] == 3
    history = client.get(f"{ROOT}/prod/history").json()
    assert [(c["revision"], c["kind"], c["restored_revision"]) for c in history] == [
        (1, "create", None),
        (2, "set_plan", None),
        (3, "rollback", 1),
    ]
    assert history[1]["actor"] == "token:editor" and history[1]["reason"] == "promote"
    assert client.get(f"{ROOT}/prod").json() == back.json()
    assert client.get(ROOT).json() == [back.json()]


@pytest.mark.parametrize(
    ("plan", "status", "code", "field", "words"),
    [
        ({"shares": {"1": 90}}, 400, "invalid_argument", "plan.shares", "got 90: add 10"),
        ({"shares": {"one": 100}}, 400, "invalid_argument", "plan.shares", "by number"),
        ({"shares": {"1": 50, "01": 50}}, 400, "invalid_argument", "plan.shares", "twice"),
        ({"shares": {"1": 100}, "shadow": [1]}, 400, "invalid_argument", "plan.shadow", "both"),
        ({"shares": {"1": 95, "9": 5}}, 404, "not_found", "plan.shares", "version 9"),
    ],
)
def test_bad_plans_are_refused_in_the_envelope(
    client: httpx.Client, plan: dict[str, Any], status: int, code: str, field: str, words: str
) -> None:
    error = _error(_create(client, plan), status, code)
    assert error["details"]["parameter"] == field and words in error["message"], error
    assert client.get(ROOT).json() == []


def test_malformed_requests_are_refused(client: httpx.Client) -> None:
    _error(_create(client, {"shares": {"1": "lots"}}), 400, "invalid_argument")
    _error(_create(client, {"shares": {"1": 100}, "extra": 1}), 400, "invalid_argument")
    assert _create(client, {"shares": {"1": 100}}).status_code == 200
    error = _error(
        client.put(f"{ROOT}/prod/plan", json={"plan": {"shares": {"2": 100}}}),
        400,
        "invalid_argument",
    )
    assert "reason" in error["message"]
    stale = client.put(
        f"{ROOT}/prod/plan",
        json={"plan": {"shares": {"2": 100}}, "reason": "r", "expected_revision": 7},
    )
    assert _error(stale, 409, "conflict")["details"]["revision"] == 1
    _error(client.post(f"{ROOT}/prod/rollback", json={"reason": "r"}), 409, "conflict")
    _error(client.get(f"{ROOT}/nope"), 404, "not_found")
    _error(
        client.post(f"{ROOT}/prod/rollback", json={"reason": "r", "to_revision": 0}),
        400,
        "invalid_argument",
    )
    assert client.get(f"{ROOT}/prod").json()["revision"] == 1
