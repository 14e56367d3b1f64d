"""The HTTP limits ``loopwise server`` and ``loopwise serve`` run under (the real-socket
behaviour is tested against a live server in tests/server/test_slow_clients.py)."""

from __future__ import annotations

import resource

import pytest

from loopwise.cli import http_server
from loopwise.cli.http_server import FILES_KEPT_FOR_WORK, HttpLimits, guarded_protocol


def test_the_connection_limit_fits_the_open_file_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (256, 4096))
    assert http_server._fitting_limit(1000) == 256 - FILES_KEPT_FOR_WORK
    assert http_server._fitting_limit(100) == 100
    monkeypatch.setattr(resource, "getrlimit", lambda _: (resource.RLIM_INFINITY,) * 2)
    assert http_server._fitting_limit(1000) == 1000


def test_the_protocol_is_uvicorns_httptools_one() -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    assert issubclass(guarded_protocol(HttpLimits()), HttpToolsProtocol)
