"""The server decides who is calling, and whether they may, before it reads a request's body.

An unauthenticated request or one its role does not allow is answered at once, its body left
unread and its connection closed, so that anonymous bodies cannot fill the server's memory and
a malformed body cannot hide that the caller had no right to send it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopwise.server import create_app
from loopwise.store import Store, open_store

from .harness import AppTransport, serve_in_thread


@dataclass
class World:
    store: Store
    secrets: dict[str, str]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store = open_store(tmp_path / "store")
    store.get_or_create_project("demo")
    secrets = {role: store.create_token(role, name=role)[1] for role in ("viewer", "editor")}
    yield World(store, secrets)
    store.close()


def _call(app: Any, method: str, path: str, headers: dict[str, str]) -> tuple[int, Any, int]:
    """Call the ASGI app with a body that never ends; (status, JSON body, body reads)."""
    reads = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0)
        return {"type": "http.request", "body": b"x" * 65536, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 8080),
    }

    async def run() -> None:
        await asyncio.wait_for(app(scope, receive, send), timeout=10)

    asyncio.run(run())
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert (b"connection", b"close") in [(k.lower(), v) for k, v in start["headers"]]
    return start["status"], json.loads(body), reads


BIG = {"content-type": "application/json", "content-length": str(32 * 2**20)}


def test_an_anonymous_body_is_never_read(world: World) -> None:
    app = create_app(world.store)
    status, body, reads = _call(app, "POST", "/api/v1/metrics", BIG)
    assert (status, body["error"]["code"], reads) == (401, "unauthenticated", 0)
    status, _, reads = _call(app, "POST", "/api/v1/no/such/route", BIG)
    assert (status, reads) == (401, 0)  # unknown routes too: nothing is read for a stranger


def test_a_body_the_role_may_not_send_is_never_read(world: World) -> None:
    app = create_app(world.store)
    viewer = {**BIG, "authorization": f"Bearer {world.secrets['viewer']}"}
    status, body, reads = _call(app, "POST", "/api/v1/metrics", viewer)
    assert (status, body["error"]["code"], reads) == (403, "permission_denied", 0)


@pytest.mark.parametrize("content", [b"{not json", b'{"entries": "not a list"}'])
def test_authentication_and_role_come_before_the_body_is_judged(
    world: World, content: bytes
) -> None:
    transport = AppTransport(create_app(world.store))
    with httpx.Client(transport=transport, base_url="http://test") as client:
        headers = {"Content-Type": "application/json"}
        anonymous = client.post("/api/v1/metrics", content=content, headers=headers)
        assert anonymous.status_code == 401, anonymous.text
        headers["Authorization"] = f"Bearer {world.secrets['viewer']}"
        viewer = client.post("/api/v1/metrics", content=content, headers=headers)
        assert viewer.status_code == 403, viewer.text
        headers["Authorization"] = f"Bearer {world.secrets['editor']}"
        editor = client.post("/api/v1/metrics", content=content, headers=headers)
        assert editor.status_code == 400, editor.text  # allowed to write: now the body counts


@pytest.mark.parametrize("header", ["{secret}", "Token {secret}", "{secret} trailing"])
def test_a_header_without_bearer_is_refused_without_echoing_it(world: World, header: str) -> None:
    secret = world.secrets["editor"]
    transport = AppTransport(create_app(world.store))
    with httpx.Client(transport=transport, base_url="http://test") as client:
        response = client.get(
            "/api/v1/whoami", headers={"Authorization": header.format(secret=secret)}
        )
    assert response.status_code == 401
    assert "Bearer" in response.json()["error"]["message"]
    assert secret not in response.text and secret[:12] not in response.text


def test_public_routes_still_answer_without_a_token(world: World) -> None:
    transport = AppTransport(create_app(world.store))
    with httpx.Client(transport=transport, base_url="http://test") as client:
        assert client.get("/health").status_code == 200
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/docs").status_code == 200


def test_a_real_server_answers_a_stranger_before_the_body_and_hangs_up(world: World) -> None:
    """Over a socket: headers announcing 32 MiB and a first 64 KiB get 401 at once, and the
    server closes the connection instead of waiting for the rest."""
    with serve_in_thread(create_app(world.store)) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /api/v1/metrics HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Type: application/json\r\nContent-Length: 33554432\r\n\r\n" + b"x" * 65536
            )
            received = b""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break  # the server hung up
                received += chunk
            else:
                pytest.fail(f"the server kept the connection open; it sent {received[:200]!r}")
    assert received.startswith(b"HTTP/1.1 401"), received[:200]
    assert b"unauthenticated" in received
