"""A real Prometheus server for tests: Debian's binary, scraping one target every second.

``PrometheusServer(target).start()`` writes a config and a storage folder in a temporary
directory, listens on a free loopback port and waits for ``/-/ready``; ``query(expr)`` polls the
HTTP API until the expression has a value. In CI (``CI=true``) a missing binary is a failure;
elsewhere the test is skipped with the command that installs it.

Prometheus 2.x applies new scrape targets on a fixed 5-second tick, so the first value appears
5 to 6 s after start (no flag shortens it): start one server per test module where you can.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from .server.harness import free_port
from .services import missing_service

__all__ = ["PrometheusServer", "prometheus_binary", "values"]

Result = list[dict[str, Any]]


def prometheus_binary() -> str:
    """The path of ``prometheus``; fails in CI and skips elsewhere when it is not installed."""
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if found is None:
        missing_service("Prometheus", "apt-get install -y --no-install-recommends prometheus")
        raise AssertionError("unreachable")
    return found


class PrometheusServer:
    """A throwaway Prometheus that scrapes ``target`` (a URL such as ``http://127.0.0.1:8000/metrics``).

    Use it as a context manager, or call ``start()`` and ``stop()``.
    """

    def __init__(self, target: str, scrape_interval_s: float = 1.0) -> None:
        self.target = target
        self.scrape_interval_s = scrape_interval_s
        self.url = ""
        self.folder: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # -- life cycle ---------------------------------------------------------------------------

    def start(self, timeout_s: float = 30.0) -> PrometheusServer:
        binary = prometheus_binary()
        self.folder = Path(tempfile.mkdtemp(prefix="loopwise-prometheus-"))
        config = self.folder / "prometheus.yml"
        config.write_text(json.dumps(self._config(), indent=2))  # JSON is YAML
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        with self.log_path.open("wb") as log:  # a file, not a pipe: a full pipe would stall it
            self._process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--storage.tsdb.retention.time=1h",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
            )
        deadline = time.monotonic() + timeout_s
        while True:
            if self._process.poll() is not None:
                log_text = self.log()
                self.stop()
                raise AssertionError(f"prometheus exited at start-up:\n{log_text}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                log_text = self.log()
                self.stop()
                raise AssertionError(f"prometheus not ready in {timeout_s} s:\n{log_text}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGTERM)  # flushes and closes its storage
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- queries ------------------------------------------------------------------------------

    def query(
        self,
        expr: str,
        timeout_s: float = 30.0,
        until: Callable[[Result], bool] = bool,
    ) -> Result:
        """Evaluate ``expr`` now (``/api/v1/query``), polling until ``until(result)`` holds.

        The default waits for a non-empty result. Each element is Prometheus's own
        ``{"metric": {labels}, "value": [time, "text"]}``; ``values(result)`` reads the numbers.
        On timeout the error shows the last result and the scrape target's health.
        """
        deadline = time.monotonic() + timeout_s
        result: Result = []
        while True:
            response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5)
            body = response.json()
            if response.status_code != 200 or body.get("status") != "success":
                raise AssertionError(f"query {expr!r} failed: {response.status_code} {body}")
            result = body["data"]["result"]
            if until(result):
                return result
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"query {expr!r} gave {result} after {timeout_s} s; "
                    f"targets: {self.targets()}\nprometheus log:\n{self.log()}"
                )
            time.sleep(self.scrape_interval_s / 4)

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets with their health and last error (for diagnostics)."""
        body = httpx.get(f"{self.url}/api/v1/targets", timeout=5).json()
        return [
            {key: target.get(key) for key in ("scrapeUrl", "health", "lastError")}
            for target in body["data"]["activeTargets"]
        ]

    # -- internals ----------------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        assert self.folder is not None, "start() first"
        return self.folder / "prometheus.log"

    def log(self) -> str:
        if self.folder is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def _config(self) -> dict[str, Any]:
        parts = urlsplit(self.target)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"target must be a URL such as http://127.0.0.1:8000/metrics, got {self.target!r}"
            )
        interval = f"{round(self.scrape_interval_s * 1000)}ms"
        return {
            "global": {
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "evaluation_interval": interval,
            },
            "scrape_configs": [
                {
                    "job_name": "loopwise",
                    "scheme": parts.scheme,
                    "metrics_path": parts.path or "/metrics",
                    "static_configs": [{"targets": [parts.netloc]}],
                }
            ],
        }


def values(result: Result) -> list[float]:
    """The numbers in an instant-vector result, in its order."""
    return [float(sample["value"][1]) for sample in result]
