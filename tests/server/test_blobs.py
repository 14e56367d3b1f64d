"""Artifact bytes stream through the server: bounded memory, resumed downloads, clean failures."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import loopwise as lw
import loopwise.context
from loopwise.errors import StoreError
from loopwise.server import create_app
from loopwise.store import Store, open_store
from loopwise.store.remote import RemoteStore

from .harness import AppTransport, start_server

MiB = 1024 * 1024


def _write_file(path: Path, size_bytes: int) -> str:
    """A file of pseudo-random bytes (a repeated random block); returns its digest."""
    block = os.urandom(MiB)
    digest = hashlib.sha256()
    with path.open("wb") as f:
        for i in range(size_bytes // MiB):
            chunk = block[i % 251 :] + block[: i % 251]  # no two chunks alike
            f.write(chunk)
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class PeakRss:
    """Samples a process's resident memory every 20 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_bytes = max(self.peak_bytes, _rss_bytes(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Any, str, str, Path]]:
    """A real server process on a fresh store; its temporary files go to a folder we watch."""
    store_path = tmp_path / "store"
    lw.init(project="blobs", uri=store_path)
    secret = lw.context.current().store.create_token("admin", name="blobs")[1]
    lw.shutdown()
    server_tmp = tmp_path / "server-tmp"
    server_tmp.mkdir()
    process, url = start_server(store_path, env={"TMPDIR": str(server_tmp)})
    yield process, url, secret, server_tmp
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)


@pytest.mark.slow(seconds=20)
def test_a_1_gb_artifact_streams_both_ways_in_bounded_server_memory(
    served: tuple[Any, str, str, Path], tmp_path: Path
) -> None:
    process, url, secret, _ = served
    source = tmp_path / "big.bin"
    digest = _write_file(source, 1024 * MiB)
    remote = RemoteStore(url, secret, spool_dir=tmp_path / "spool").open()
    try:
        with PeakRss(process.pid) as upload:
            stored, size = remote.artifacts.put_file(source)
        assert (stored, size) == (digest, 1024 * MiB)
        source.unlink()  # room on the disk for the download
        with PeakRss(process.pid) as download:
            f = remote.artifacts.open_verified(digest)
        with f:
            assert os.fstat(f.fileno()).st_size == 1024 * MiB
    finally:
        remote.close()
    assert upload.peak_bytes < 200 * MiB, f"upload peak RSS {upload.peak_bytes / MiB:.0f} MiB"
    assert download.peak_bytes < 200 * MiB, f"download peak RSS {download.peak_bytes / MiB:.0f} MiB"


@pytest.mark.slow
def test_a_dropped_upload_stores_nothing_and_leaves_no_files(
    served: tuple[Any, str, str, Path],
) -> None:
    _, url, secret, server_tmp = served
    digest = "sha256:" + "12" * 32
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        head = (
            f"PUT /api/v1/blobs/{digest} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {secret}\r\nContent-Length: {64 * MiB}\r\n\r\n"
        )
        sock.sendall(head.encode() + b"x" * (4 * MiB))
        time.sleep(0.5)  # the server is streaming it to a temporary file by now
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"}) as client:
        deadline = time.monotonic() + 10
        while any(server_tmp.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(server_tmp.iterdir()) == []
        assert client.head(f"/api/v1/blobs/{digest}").status_code == 404


class DropOnce(httpx.BaseTransport):
    """Passes requests through, but the first blob download breaks off after ``after`` bytes."""

    def __init__(self, inner: httpx.BaseTransport, after: int) -> None:
        self.inner = inner
        self.after = after
        self.ranges: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method != "GET" or "/blobs/" not in request.url.path:
            return response
        self.ranges.append(request.headers.get("range"))
        if len(self.ranges) > 1:
            return response
        body = response.read()
        after = self.after

        class Broken(httpx.SyncByteStream):
            def __iter__(self) -> Iterator[bytes]:
                yield body[:after]
                raise httpx.ReadError("connection reset by peer")

        return httpx.Response(response.status_code, headers=response.headers, stream=Broken())


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[tuple[Store, str]]:
    store = open_store(tmp_path / "server-store")
    yield store, store.create_token("admin", name="t")[1]
    store.close()


def test_a_broken_download_resumes_where_it_stopped(
    backend: tuple[Store, str], tmp_path: Path
) -> None:
    store, secret = backend
    data = os.urandom(3 * MiB + 123)
    digest, _ = store.artifacts.put_bytes(data)
    transport = DropOnce(AppTransport(create_app(store)), after=MiB + 7)
    remote = RemoteStore("http://t", secret, transport=transport, spool_dir=tmp_path / "sp").open()
    try:
        assert remote.artifacts.read_bytes(digest) == data
    finally:
        remote.close()
    assert transport.ranges == [None, f"bytes={MiB + 7}-"]


def test_a_download_that_keeps_breaking_fails_cleanly(
    backend: tuple[Store, str], tmp_path: Path
) -> None:
    store, secret = backend
    digest, _ = store.artifacts.put_bytes(os.urandom(MiB))

    class AlwaysDrop(DropOnce):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            self.ranges.clear()
            return super().handle_request(request)

    transport = AlwaysDrop(AppTransport(create_app(store)), after=0)
    remote = RemoteStore("http://t", secret, transport=transport, spool_dir=tmp_path / "sp").open()
    try:
        with pytest.raises(StoreError, match="broke off"):
            remote.artifacts.read_bytes(digest)
    finally:
        remote.close()


def test_a_range_request_gets_the_rest_of_the_blob(backend: tuple[Store, str]) -> None:
    store, secret = backend
    data = os.urandom(1000)
    digest, _ = store.artifacts.put_bytes(data)
    headers = {"Authorization": f"Bearer {secret}", "Range": "bytes=990-"}
    with httpx.Client(transport=AppTransport(create_app(store)), base_url="http://t") as client:
        response = client.get(f"/api/v1/blobs/{digest}", headers=headers)
        assert response.status_code == 206
        assert response.content == data[990:]
        assert response.headers["content-range"] == "bytes 990-999/1000"
        bad = client.get(f"/api/v1/blobs/{digest}", headers={**headers, "Range": "bytes=5000-"})
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "invalid_argument"
