"""A client that sends slowly, or stops sending, cannot hold the control plane's requests open."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopwise.server import create_app
from loopwise.store import Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(tmp_path / "store")
    store.get_or_create_project("demo")
    yield store
    store.close()


def test_a_json_body_that_stops_coming_gets_408(store: Store) -> None:
    secret = store.create_token("editor", name="editor")[1]
    app = create_app(store, body_timeout_s=0.5)
    sent: list[dict[str, Any]] = []
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b'{"entries": [', "more_body": True}
        await asyncio.sleep(3600)  # the client stops sending and never hangs up
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
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
