"""The remote backend's HTTP client: one connection pool, and the rules that turn responses into
results or the same exception classes the embedded store raises.

``RemoteCore`` is what every part of ``RemoteStore`` builds on, as ``SqlCore`` is for the SQL
store: the client, the metric spool and one ``_call`` per REST request.
"""

from __future__ import annotations

import functools
import ssl
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from loopwise.errors import AuthenticationError, LoopwiseError, StoreError, error_from_dict
from loopwise.store.spool import MetricSpool

__all__ = ["API_PREFIX", "RemoteCore", "segment", "tls_context"]

API_PREFIX = "/api/v1"


def segment(value: str | int) -> str:
    """A path segment, escaped so that a name can never change the route."""
    return quote(str(value), safe="")


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context per process: building it (loading CA certificates) takes ~0.1 s."""
    import certifi  # deferred: only a TLS connection needs the CA bundle

    return ssl.create_default_context(cafile=certifi.where())


class _Client:
    """One HTTP connection pool plus the rules for turning responses into results or errors."""

    def __init__(self, client: httpx.Client, url: str) -> None:
        self.http = client
        self.url = url

    def request(
        self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            response = self.http.request(method, API_PREFIX + path, json=json, params=params)
        except httpx.TransportError as exc:
            raise StoreError(
                f"Cannot reach the Loopwise server at {self.url} ({type(exc).__name__}: {exc}). "
                "Check that `loopwise server` runs there and that LOOPWISE_URI is right.",
                url=self.url,
            ) from exc
        return self.result(response)

    def result(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise self.error(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def error(self, response: httpx.Response) -> LoopwiseError:
        try:
            envelope = response.json()
        except ValueError:
            envelope = None
        error = error_from_dict(envelope, response.status_code)
        if isinstance(error, AuthenticationError):
            error.message += " (Set LOOPWISE_TOKEN to a token from `loopwise token create`.)"
            error.args = (error.message,)
        return error


class RemoteCore:
    """The client, the metric spool and the runs this process knows exist."""

    _client: _Client
    _spool: MetricSpool

    def __init__(self) -> None:
        self._known_runs: set[str] = set()
        self._known_lock = threading.Lock()

    def _call(
        self, method: str, path: str, json: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        return self._client.request(method, path, json=json, params=params)

    def flush(self) -> None:
        self._spool.flush()
