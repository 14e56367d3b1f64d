"""Headless Chromium for tests: Debian's ``chromium`` loads a page, and the test gets the DOM
after scripts ran, the console messages, every network request the page tried, or a
screenshot (with a small PNG reader, so that no imaging library is needed).

Network requests are caught by pointing Chromium at a proxy that is a local socket which
records each request line and answers nothing, so the test sees what a page would fetch
without anything leaving the machine. Chromium's own background traffic (updates, time sync,
accounts) goes to Google hosts and is left out.

A missing ``chromium`` fails the test, in CI and elsewhere, with the command that installs it.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

__all__ = ["PageLoad", "chromium_binary", "load_page", "read_png"]

INSTALL = "apt-get install -y --no-install-recommends chromium"
BROWSER_HOSTS = (".google.com", ".googleapis.com", ".gvt1.com", ".googleusercontent.com")
PAGE_HOSTS = ("fonts.googleapis.com", "fonts.gstatic.com")  # a page's fetches, never ignored
QUIET = [
    "--headless",
    "--disable-gpu",
    "--no-sandbox",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--hide-scrollbars",
]


def chromium_binary() -> str:
    """The path of Debian's ``chromium``; the test fails (never skips) when it is missing."""
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if found is None:
        pytest.fail(
            f"Chromium is not installed; install it with: {INSTALL} (`.ci/run` does so in CI). "
            "The HTML report's rendering is only tested in a real browser."
        )
    return found


@dataclass(frozen=True)
class PageLoad:
    """What one page load gave: the DOM after scripts ran, console lines and the requests."""

    dom: str
    console: list[str]
    requests: list[str]


class _RecordingProxy:
    """A local socket that Chromium uses as its HTTP proxy: it records request lines."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen()
        self._socket.settimeout(0.2)
        self.port = int(self._socket.getsockname()[1])
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> _RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1.0)
                try:
                    first = conn.recv(4096).split(b"\r\n", 1)[0]
                except OSError:
                    continue
                self.lines.append(first.decode("latin-1"))

    def page_requests(self) -> list[str]:
        return [line for line in self.lines if not _browser_own(line)]


def _browser_own(line: str) -> bool:
    parts = line.split()
    target = parts[1] if len(parts) > 1 else ""
    host = target.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].lower()
    if host in PAGE_HOSTS:
        return False
    return any(host.endswith(suffix) or host == suffix[1:] for suffix in BROWSER_HOSTS)


def load_page(
    page: Path | str,
    *,
    screenshot_to: Path | None = None,
    window_px: tuple[int, int] = (1400, 3000),
    budget_ms: int = 10_000,
    timeout_s: float = 120,
) -> PageLoad:
    """Open ``page`` (a local file, or the URL of a server on loopback, which Chromium then
    reaches directly) in a ``window_px`` (width, height) window, let its scripts run for up to
    ``budget_ms`` of virtual time, and return the resulting DOM, console lines and attempted
    network requests to anywhere else; with ``screenshot_to``, also save a PNG of the window
    there (one browser start for both: each start parses the page's scripts again)."""
    if isinstance(page, str):
        assert page.startswith("http://127.0.0.1:"), f"only a loopback server, got {page!r}"
    address = page if isinstance(page, str) else page.resolve().as_uri()
    bypass = "<local>" if isinstance(page, str) else "<-loopback>"
    binary = chromium_binary()
    shot = [f"--screenshot={screenshot_to}"] if screenshot_to is not None else []
    with (
        tempfile.TemporaryDirectory(prefix="loopwise-chromium-") as profile,
        _RecordingProxy() as proxy,
    ):
        result = subprocess.run(
            [
                binary,
                *QUIET,
                f"--user-data-dir={profile}",
                f"--proxy-server=http://127.0.0.1:{proxy.port}",
                f"--proxy-bypass-list={bypass}",
                "--enable-logging=stderr",
                "--v=0",
                f"--window-size={window_px[0]},{window_px[1]}",
                f"--virtual-time-budget={budget_ms}",
                "--dump-dom",
                *shot,
                address,
            ],
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
        requests = proxy.page_requests()
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, f"chromium exited with {result.returncode}:\n{stderr[-3000:]}"
    if screenshot_to is not None:
        assert screenshot_to.exists(), f"chromium wrote no screenshot:\n{stderr[-3000:]}"
    console = [line for line in stderr.splitlines() if ":CONSOLE" in line]
    return PageLoad(result.stdout.decode("utf-8", "replace"), console, requests)


def read_png(path: Path) -> npt.NDArray[np.uint8]:
    """The pixels of an 8-bit RGB or RGBA PNG (what Chromium writes) as (height, width, channels)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, chunks, header = 8, [], b""
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + size]
        pos += 12 + size
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, "only 8-bit RGB(A) is read here"
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    raw = np.frombuffer(zlib.decompress(b"".join(chunks)), dtype=np.uint8)
    raw = raw.reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prior = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        filter_type, line = int(raw[y, 0]), raw[y, 1:]
        out[y] = _unfilter(filter_type, line, prior, bpp)
        prior = out[y]
    return out.reshape(height, width, bpp)


def _unfilter(
    kind: int, line: npt.NDArray[np.uint8], prior: npt.NDArray[np.uint8], bpp: int
) -> npt.NDArray[np.uint8]:
    if kind == 0:
        return line
    if kind == 1:  # Sub: a running sum of each channel along the row
        pixels = line.reshape(-1, bpp).astype(np.int64)
        return (np.cumsum(pixels, axis=0) % 256).astype(np.uint8).reshape(-1)
    if kind == 2:  # Up
        return (line.astype(np.int64) + prior).astype(np.uint8)
    # Average and Paeth depend on the pixel to the left: one byte at a time.
    cur, up = bytearray(line.tobytes()), prior.tobytes()
    for i in range(len(cur)):
        a = cur[i - bpp] if i >= bpp else 0
        b = up[i]
        if kind == 3:
            cur[i] = (cur[i] + ((a + b) >> 1)) & 0xFF
            continue
        c = up[i - bpp] if i >= bpp else 0
        pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
        pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        cur[i] = (cur[i] + pred) & 0xFF
    return np.frombuffer(bytes(cur), dtype=np.uint8)
