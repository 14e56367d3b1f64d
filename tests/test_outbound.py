"""Outbound requests to URLs from stored records: refused to addresses that are not public
unless the operator allows the host; the address checked is the one connected to; no
redirects; a bounded answer."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, RedirectResponse

from loopwise import outbound
from loopwise.errors import InvalidArgumentError, PermissionDeniedError

from .server.harness import serve_in_thread

seen_hosts: list[str] = []


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    app = FastAPI()

    @app.get("/page")
    def page(request: Request) -> PlainTextResponse:
        seen_hosts.append(request.headers.get("host", ""))
        return PlainTextResponse("ok")

    @app.get("/big")
    def big() -> PlainTextResponse:
        return PlainTextResponse("x" * 100_000)

    @app.get("/redirect")
    def redirect() -> RedirectResponse:
        return RedirectResponse("/page", status_code=302)

    with serve_in_thread(app) as url:
        yield url


def _hostport(url: str) -> str:
    return httpx.URL(url).netloc.decode()


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://127.0.0.1:9/metrics", "loopback"),
        ("http://localhost:9/metrics", "loopback"),
        ("http://[::1]:9/metrics", "loopback"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://10.1.2.3/", "private"),
        ("http://192.168.0.1/", "private"),
        ("http://[fd00::1]/", "private"),
        ("http://224.0.0.1/", "multicast"),
        ("http://0.0.0.0:80/", "unspecified"),
        ("http://240.0.0.1/", "reserved"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://100.64.0.1/", "not a public address"),
    ],
)
def test_addresses_that_are_not_public_are_refused(url: str, said: str) -> None:
    assert said in outbound.refusal(url)
    with pytest.raises(PermissionDeniedError, match=said) as caught:
        outbound.fetch("GET", url)
    assert outbound.ALLOW_ENV in caught.value.message


def test_a_name_that_resolves_to_loopback_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def resolve(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    assert outbound.refusal("http://metrics.example.com/") == ""  # not known until resolved
    with pytest.raises(PermissionDeniedError, match="resolves to a loopback address"):
        outbound.fetch("GET", "http://metrics.example.com/metrics")


def test_every_resolved_address_must_be_public(monkeypatch: pytest.MonkeyPatch) -> None:
    def resolve(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(PermissionDeniedError, match="private address"):
        outbound.check_url("http://two-faced.example.com/")


def test_the_operator_allows_a_host(receiver: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"{receiver}/page"
    with pytest.raises(PermissionDeniedError):
        outbound.fetch("GET", url)
    monkeypatch.setenv(outbound.ALLOW_ENV, f"example.org, {_hostport(receiver)}")
    assert outbound.refusal(url) == ""
    response = outbound.fetch("GET", url)
    assert (response.status_code, response.text) == (200, "ok")
    # Another port of the same host is still refused.
    with pytest.raises(PermissionDeniedError):
        outbound.fetch("GET", "http://127.0.0.1:9/page")


def test_the_address_checked_is_the_address_connected_to(
    receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name whose DNS answer changes between the check and the connection (rebinding)
    gets no second lookup: the request goes to the address that was checked, and the server
    is told the name."""
    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["127.0.0.1", "10.255.255.1"])
    lookups: list[str] = []

    def resolve(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.example":
            return real_getaddrinfo(host, port, *args, **kwargs)
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    # The receiver is on loopback: let the check pass it as if it were public.
    monkeypatch.setattr(outbound, "_public", lambda address: True)
    port = httpx.URL(receiver).port
    seen_hosts.clear()
    response = outbound.fetch("GET", f"http://rebind.example:{port}/page")
    assert (response.status_code, response.text) == (200, "ok")
    assert lookups == ["rebind.example"]
    assert seen_hosts == [f"rebind.example:{port}"]


def test_a_callers_transport_is_checked_for_literal_addresses_only() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    transport = httpx.MockTransport(handler)
    assert outbound.fetch("GET", "https://hooks.example.com/x", transport=transport).is_success
    assert sent[0].url.host == "hooks.example.com"
    with pytest.raises(PermissionDeniedError, match="loopback"):
        outbound.fetch("GET", "http://127.0.0.1/x", transport=transport)


def test_redirects_are_not_followed(receiver: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(outbound.ALLOW_ENV, _hostport(receiver))
    response = outbound.fetch("GET", f"{receiver}/redirect")
    assert response.status_code == 302


def test_the_answer_is_bounded(receiver: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(outbound.ALLOW_ENV, _hostport(receiver))
    with pytest.raises(httpx.HTTPError, match="larger than 1000 bytes"):
        outbound.fetch("GET", f"{receiver}/big", max_bytes=1000)
    assert len(outbound.fetch("GET", f"{receiver}/big").content) == 100_000


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "example.com", None, "http://", "http://x/" + "a" * 5000]
)
def test_a_bad_url_is_an_invalid_argument(url: object) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        outbound.check_url(url, "rollout.metrics_url")
    assert caught.value.details["parameter"] == "rollout.metrics_url"
    assert len(caught.value.message) < 500


@pytest.mark.parametrize("entry", ["host:port", "[::1", "host:0", ":80"])
def test_a_bad_allowed_host_is_named(entry: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(outbound.ALLOW_ENV, entry)
    with pytest.raises(InvalidArgumentError, match="HOST or HOST:PORT"):
        outbound.allowed_hosts()


def test_allowed_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(outbound.ALLOW_ENV, "Metrics.Internal:9100,[::1],10.0.0.5")
    assert outbound.allowed_hosts() == {
        ("metrics.internal", 9100),
        ("::1", None),
        ("10.0.0.5", None),
    }
    assert outbound.refusal("http://metrics.internal:9100/metrics") == ""
    assert outbound.refusal("http://[::1]:8000/") == ""
    assert outbound.refusal("http://10.0.0.5:1/") == ""
    assert outbound.refusal("http://10.0.0.6/") != ""
