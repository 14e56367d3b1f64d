"""The autopilot routes over raw HTTP: JSON shapes, policies parsed before they are stored, and
bad requests in the one error envelope.

The remote store checks arguments before sending them, so these requests are what another
client (curl, a script in another language) could send.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopwise.server import create_app
from loopwise.store import TrafficPlan, open_store

from .harness import AppTransport

DIGEST = "sha256:" + "ab" * 32
ROOT = "/api/v1/projects/demo/deployments/prod/autopilot"
POLICY = "label: employed\nretrain:\n  pipeline: train.py:training\n"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[AppTransport, dict[str, str]]]:
    """The app over one store, and the secrets of an editor and an admin token."""
    store = open_store(tmp_path / "store")
    store.get_or_create_project("demo")
    store.create_model_version("demo", "model", flavour="sklearn", artifact_digest=DIGEST)
    store.create_deployment("demo", "prod", "model", TrafficPlan({1: 100}), "first")
    secrets = {role: store.create_token(role, name=role)[1] for role in ("editor", "admin")}
    yield AppTransport(create_app(store)), secrets
    store.close()


def _client(app: tuple[AppTransport, dict[str, str]], role: str) -> Iterator[httpx.Client]:
    transport, secrets = app
    headers = {"Authorization": f"Bearer {secrets[role]}"}
    with httpx.Client(transport=transport, base_url="http://test", headers=headers) as client:
        yield client


@pytest.fixture
def client(app: tuple[AppTransport, dict[str, str]]) -> Iterator[httpx.Client]:
    """An editor: sets policies and reads everything."""
    yield from _client(app, "editor")


@pytest.fixture
def controller(app: tuple[AppTransport, dict[str, str]]) -> Iterator[httpx.Client]:
    """An admin token for all projects: what records the controller's decisions."""
    yield from _client(app, "admin")


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"code", "message", "details"} and error["code"] == code, error
    return error


def _decision(seq: int, **changes: Any) -> dict[str, Any]:
    body = {
        "seq": seq,
        "kind": "observe",
        "summary": f"step {seq}",
        "state": {"phase": "watching", "scores": [0.5, None, True]},
        "evidence": {"auc": 0.8125},
        "at_ms": 1_700_000_000_000 + seq,
    }
    return {**body, **changes}


def _nested(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


def test_the_json_a_client_sees(client: httpx.Client, controller: httpx.Client) -> None:
    set_ = client.put(f"{ROOT}/policy", json={"text": POLICY, "expected_revision": 0})
    assert set_.status_code == 200, set_.text
    policy = set_.json()
    assert {k: policy[k] for k in ("project", "deployment", "revision", "text", "actor")} == {
        "project": "demo",
        "deployment": "prod",
        "revision": 1,
        "text": POLICY,
        "actor": "token:editor",
    }
    assert client.get(f"{ROOT}/policy").json() == policy
    assert client.get(f"{ROOT}/policy", params={"revision": 1}).json() == policy
    latest = client.get(f"{ROOT}/decisions/latest")
    assert latest.status_code == 200 and latest.json() is None
    made = [controller.post(f"{ROOT}/decisions", json=_decision(seq)).json() for seq in (1, 2, 3)]
    assert made[0] == {
        **_decision(1),
        "project": "demo",
        "deployment": "prod",
        "actor": "token:admin",
        "created_ms": made[0]["created_ms"],
    }
    assert client.get(f"{ROOT}/decisions").json() == made
    page = client.get(f"{ROOT}/decisions", params={"after_seq": 1, "limit": 1}).json()
    assert page == made[1:2]
    assert client.get(f"{ROOT}/decisions/latest").json() == made[2]


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        (POLICY + "gates:\n  alpha: 2\n", "gates.alpha", "gates.alpha"),
        ("retrain:\n  pipeline: train.py:training\n", "label", "label: missing"),
        (POLICY + "rollout:\n  strategy: yolo\n", "rollout.strategy", "yolo"),
        ("label: [unclosed\n", "policy", "not valid YAML"),
        ("   ", "text", "non-empty YAML text"),
        (POLICY + "deployment: canary\n", "deployment", "for deployment 'canary'"),
    ],
)
def test_a_policy_that_does_not_parse_is_not_stored(
    client: httpx.Client, text: str, field: str, words: str
) -> None:
    error = _error(client.put(f"{ROOT}/policy", json={"text": text}), 400, "invalid_argument")
    assert error["details"]["parameter"] == field and words in error["message"], error
    _error(client.get(f"{ROOT}/policy"), 404, "not_found")


def test_the_server_does_not_import_the_policys_pipeline(client: httpx.Client) -> None:
    # The pipeline is the client's code: the autopilot checks it where it runs.
    text = "label: employed\nretrain:\n  pipeline: no_such_module_here:training\n"
    assert client.put(f"{ROOT}/policy", json={"text": text}).json()["revision"] == 1


def test_policy_errors(client: httpx.Client) -> None:
    error = _error(client.get(f"{ROOT}/policy"), 404, "not_found")
    assert "loopwise autopilot set-policy prod FILE" in error["message"]
    client.put(f"{ROOT}/policy", json={"text": POLICY})
    stale = client.put(f"{ROOT}/policy", json={"text": POLICY + "# b\n", "expected_revision": 0})
    assert _error(stale, 409, "conflict")["details"]["revision"] == 1
    _error(client.get(f"{ROOT}/policy", params={"revision": 2}), 404, "not_found")
    _error(client.get(f"{ROOT}/policy", params={"revision": 0}), 400, "invalid_argument")
    _error(client.put(f"{ROOT}/policy", json={"policy": POLICY}), 400, "invalid_argument")
    negative = client.put(f"{ROOT}/policy", json={"text": POLICY, "expected_revision": -1})
    _error(negative, 400, "invalid_argument")
    assert client.get(f"{ROOT}/policy").json()["revision"] == 1


def test_decision_errors(client: httpx.Client, controller: httpx.Client) -> None:
    assert controller.post(f"{ROOT}/decisions", json=_decision(1)).status_code == 200
    again = _error(controller.post(f"{ROOT}/decisions", json=_decision(1)), 409, "conflict")
    assert again["details"]["expected_seq"] == 2
    _error(controller.post(f"{ROOT}/decisions", json=_decision(5)), 409, "conflict")
    refused: list[tuple[dict[str, Any], str | None]] = [
        (_decision(2, kind="Promote!"), "kind"),
        (_decision(2, summary=""), "summary"),
        (_decision(2, state={"note": "nul\x00"}), "state"),
        (_decision(2, evidence={"deep": _nested(70)}), "evidence"),
        (_decision(2, at_ms=-5), "at_ms"),
        ({**_decision(2), "seq": "2"}, None),  # a string is not a number here
        (_decision(2, state=[1, 2]), None),
        ({**_decision(2), "extra": 1}, None),
    ]
    for body, field in refused:
        error = _error(controller.post(f"{ROOT}/decisions", json=body), 400, "invalid_argument")
        if field is not None:
            assert error["details"]["parameter"] == field, error
    for params in ({"limit": 0}, {"limit": 1001}, {"after_seq": -1}):
        _error(client.get(f"{ROOT}/decisions", params=params), 400, "invalid_argument")
    assert [d["seq"] for d in client.get(f"{ROOT}/decisions").json()] == [1]


def test_unknown_deployments_are_not_found(client: httpx.Client, controller: httpx.Client) -> None:
    other = "/api/v1/projects/demo/deployments/prdo/autopilot"
    for response in [
        client.put(f"{other}/policy", json={"text": POLICY}),
        client.get(f"{other}/policy"),
        controller.post(f"{other}/decisions", json=_decision(1)),
        client.get(f"{other}/decisions"),
        client.get(f"{other}/decisions/latest"),
    ]:
        assert "'prod'" in _error(response, 404, "not_found")["message"]
    _error(client.get("/api/v1/projects/nope/deployments/prod/autopilot/policy"), 404, "not_found")
