"""``loopwise serve`` as a real process on a loopback port, for the end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from ..server.harness import free_port


def wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


@contextmanager
def live_serve(store: Path, args: list[str], log: Path, project: str = "p") -> Iterator[str]:
    """``loopwise --uri STORE -p PROJECT serve ARGS --port N``, ready; yields its URL and stops
    it with SIGINT (as Ctrl-C would) on the way out. Its output goes to ``log``."""
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "loopwise", "--uri", str(store), "-p", project, "serve",
             *args, "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ),
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, url, log)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()  # a server still loading on a busy machine: never leave it running
            process.wait()
            raise
