"""Without authentication the server answers loopback names only, so DNS rebinding gets nowhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loopwise.server import create_app
from loopwise.server.host_check import host_name
from loopwise.store import Store, open_store

from .harness import AppTransport, start_server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(tmp_path / "store")
    yield store
    store.close()


def _whoami(app: object, host: str, token: str | None = None) -> httpx.Response:
    headers = {"Host": host}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(transport=AppTransport(app), base_url="http://127.0.0.1") as client:
        return client.get("/api/v1/whoami", headers=headers)


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8080", "LOCALHOST.", "127.0.0.1:1", "127.9.9.9", "[::1]:80"]
)
def test_no_auth_answers_loopback_names(store: Store, host: str) -> None:
    response = _whoami(create_app(store, auth=False), host)
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "admin"


@pytest.mark.parametrize(
    "host", ["rebind.attacker.example", "rebind.attacker.example:8080", "127.0.0.1.nip.io", "[::2]"]
)
def test_no_auth_refuses_any_other_name(store: Store, host: str) -> None:
    response = _whoami(create_app(store, auth=False), host)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_argument" and error["details"] == {"parameter": "Host"}
    assert "--allowed-host" in error["message"] and host in error["message"]


def test_a_long_host_is_not_quoted_whole(store: Store) -> None:
    host = "a" * 5000 + ".example"
    response = _whoami(create_app(store, auth=False), host)
    assert response.status_code == 400 and len(response.text) < 1000


def test_the_operator_may_allow_more_names(store: Store) -> None:
    app = create_app(store, auth=False, allowed_hosts=["dev.internal"])
    assert _whoami(app, "dev.internal:8080").status_code == 200
    assert _whoami(app, "localhost").status_code == 200
    assert _whoami(app, "other.internal").status_code == 400


def test_with_auth_any_name_unless_the_operator_limits_them(store: Store) -> None:
    secret = store.create_token("viewer")[1]
    assert _whoami(create_app(store), "anything.example", secret).status_code == 200
    limited = create_app(store, allowed_hosts=["loopwise.internal"])
    assert _whoami(limited, "loopwise.internal", secret).status_code == 200
    assert _whoami(limited, "anything.example", secret).status_code == 400


def test_host_name() -> None:
    assert host_name("[::1]:8080") == "::1"
    assert host_name("Example.COM:80") == "example.com"
    assert host_name("::1") == "::1"  # unbracketed IPv6: no port to strip


def test_a_real_no_auth_server_refuses_a_rebound_name(tmp_path: Path) -> None:
    process, url = start_server(tmp_path / "store", "--no-auth", "--allowed-host", "dev.internal")
    try:
        for host, status in [("rebind.attacker.example", 400), ("dev.internal", 200)]:
            response = httpx.get(url + "/api/v1/whoami", headers={"Host": host}, timeout=10)
            assert response.status_code == status, response.text
        assert httpx.get(url + "/api/v1/tokens", timeout=10).status_code == 200  # 127.0.0.1
    finally:
        process.terminate()
        process.wait(timeout=30)
