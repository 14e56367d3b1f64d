"""Ways to reach the control-plane app in tests: in-process, or a real server on loopback."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import httpx
import uvicorn


class AppTransport(httpx.BaseTransport):
    """A synchronous httpx transport that drives an ASGI app in-process.

    ``httpx.ASGITransport`` is asynchronous; the SDK's client is synchronous, so the app runs
    on an event loop in a background thread and each request is handed to it.
    """

    def __init__(self, app: Any) -> None:
        self.asgi = httpx.ASGITransport(app=app)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def _send(self, request: httpx.Request, body: bytes) -> tuple[int, Any, bytes]:
        inner = httpx.Request(request.method, request.url, headers=request.headers, content=body)
        response = await self.asgi.handle_async_request(inner)
        content = await response.aread()
        return response.status_code, response.headers, content

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        future: Future[tuple[int, Any, bytes]] = asyncio.run_coroutine_threadsafe(
            self._send(request, body), self.loop
        )
        status, headers, content = future.result()
        headers = [(k, v) for k, v in headers.multi_items() if k.lower() != "content-encoding"]
        return httpx.Response(status, headers=headers, content=content, request=request)

    def close(self) -> None:
        if self.loop.is_closed():
            return  # httpx closes the transport with its client; tests may close it again
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any, lifespan: Literal["auto", "on", "off"] = "off") -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def start_server(
    store: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Start ``loopwise server`` on a free port (its output goes to ``server.log`` beside it)."""
    port = free_port()
    log = store.parent / "server.log"
    with log.open("w") as out:  # a file, not a pipe: a full pipe would stall the server
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loopwise",
                "--uri",
                str(store),
                "server",
                "--port",
                str(port),
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text()}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("server did not start in 60 s")
        time.sleep(0.1)
