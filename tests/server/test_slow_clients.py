"""A client that sends slowly, or stops sending, cannot hold the control plane's requests open.

The real-server tests run ``loopwise server`` itself: the limits live in the HTTP protocol that
the CLI gives uvicorn (``loopwise/cli/http_server.py``), below anything the app can see.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopwise.server import create_app
from loopwise.store import Store, open_store

from .harness import start_server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(tmp_path / "store")
    store.get_or_create_project("demo")
    yield store
    store.close()


def test_a_json_body_that_stops_coming_gets_408(store: Store) -> None:
    secret = store.create_token("editor", name="editor")[1]
    app = create_app(store, body_timeout_s=0.5)
    sent: list[MutableMapping[str, Any]] = []
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b'{"entries": [', "more_body": True}
        await asyncio.sleep(3600)  # the client stops sending and never hangs up
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/metrics",
        "raw_path": b"/api/v1/metrics",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"authorization", f"Bearer {secret}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", b"1000"),
        ],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 8080),
    }
    started = time.monotonic()
    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=30))
    assert time.monotonic() - started < 10  # 0.5 s, with room for a slow machine
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 408
    assert (b"connection", b"close") in start["headers"]
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert body["error"]["code"] == "request_timeout"
    assert body["error"]["details"]["received_bytes"] == len(b'{"entries": [')


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _closed_by_server(sock: socket.socket, deadline: float) -> bool:
    """Whether the server hangs up on ``sock`` before ``deadline`` (reading what it sends)."""
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
    return False


BLOB_PUT = (
    b"PUT /api/v1/blobs/sha256:" + b"0" * 64 + b" HTTP/1.1\r\nHost: localhost\r\n"
    b"Content-Length: 1000\r\n\r\n" + b"x" * 10
)


def test_half_sent_requests_neither_starve_the_server_nor_stay_open(tmp_path: Path) -> None:
    """150 connections that send nothing, half a request line, half the headers, or stop in
    the middle of a body, against a limit of 40: the server keeps at most about 40 of them,
    still answers a normal request at once, and hangs up on every one within its timeouts."""
    process, url = start_server(
        tmp_path / "store", "--no-auth", "--limit-concurrency", "40",
        "--timeout-headers", "2", "--timeout-body", "2",
    )  # fmt: skip
    host, port = url.removeprefix("http://").split(":")
    slow: list[socket.socket] = []
    try:
        baseline = _open_fds(process.pid)
        for i in range(150):
            sock = socket.create_connection((host, int(port)), timeout=10)
            slow.append(sock)
            if i < 10:
                sock.sendall(BLOB_PUT)  # a body that stops after 10 of its 1,000 bytes
            elif i % 3 == 1:
                sock.sendall(b"GET /hea")
            elif i % 3 == 2:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1")
        time.sleep(0.5)
        assert _open_fds(process.pid) - baseline <= 40 + 5
        started = time.monotonic()
        response = httpx.get(url + "/health", timeout=10)
        assert response.status_code == 200 and time.monotonic() - started < 5
        deadline = time.monotonic() + 20  # timeouts of 2 s, with room for a slow machine
        still_open = [i for i, sock in enumerate(slow) if not _closed_by_server(sock, deadline)]
        assert still_open == []
        assert _open_fds(process.pid) - baseline <= 5
        assert httpx.get(url + "/api/v1/whoami", timeout=10).status_code == 200
    finally:
        for sock in slow:
            sock.close()
        process.terminate()
        process.wait(timeout=30)
