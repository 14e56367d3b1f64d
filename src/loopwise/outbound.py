"""Outbound HTTP to URLs that stored records name (a rollout's ``metrics_url``, webhooks): only to
public addresses, or to hosts the operator allows.

Whoever can write a policy or an alert rule could otherwise make the control plane fetch its
internal pages (a cloud metadata service, an admin port on loopback). ``fetch`` resolves the
host, refuses it unless every address is public (not loopback, private, link-local, shared,
multicast, unspecified or reserved) or the operator allowed the host, then connects to the
address it checked — a name that resolves differently a moment later changes nothing. It
follows no redirects, reads at most ``max_bytes`` of the answer, and does not use the
``HTTP(S)_PROXY`` settings. The operator allows hosts with ``LOOPWISE_ALLOW_OUTBOUND_HOSTS``
(comma-separated ``HOST`` or ``HOST:PORT``) or ``allow_hosts`` (the CLI's
``--allow-outbound-host``).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from loopwise.errors import InvalidArgumentError, PermissionDeniedError

__all__ = [
    "ALLOW_ENV",
    "MAX_RESPONSE_BYTES",
    "allow_hosts",
    "allowed_hosts",
    "check_url",
    "fetch",
    "parse_url",
    "refusal",
]

ALLOW_ENV = "LOOPWISE_ALLOW_OUTBOUND_HOSTS"
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
"""The most of an answer ``fetch`` reads (an inference server's /metrics is far smaller)."""
MAX_URL_CHARS = 2000
_SHOWN_CHARS = 200

_added: set[tuple[str, int | None]] = set()
"""Hosts allowed by ``allow_hosts`` in this process (beside the environment's)."""

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _shown(url: str) -> str:
    return url if len(url) <= _SHOWN_CHARS else url[:_SHOWN_CHARS] + "…"


def _entry(text: str) -> tuple[str, int | None]:
    """``HOST``, ``HOST:PORT``, ``[IPv6]`` or ``[IPv6]:PORT`` as (lower-case host, port)."""
    text = text.strip()
    host, port = text, None
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        host = inside if bracket else ""
        if rest:
            if not rest.startswith(":"):
                raise ValueError(text)
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, number = text.partition(":")
        port = int(number)
    if not host or (port is not None and not 0 < port < 65536):
        raise ValueError(text)
    return host.lower(), port


def _parse_entries(entries: Iterable[str], where: str) -> set[tuple[str, int | None]]:
    found = set()
    for entry in entries:
        if not entry.strip():
            continue
        try:
            found.add(_entry(entry))
        except ValueError:
            raise InvalidArgumentError(
                f"Expected each outbound host allowed as HOST or HOST:PORT (e.g. "
                f"metrics.internal:9100, 127.0.0.1:8000, [::1]:8000), got "
                f"{_shown(entry)!r} in {where}.",
                parameter=where,
            ) from None
    return found


def allow_hosts(entries: Iterable[str]) -> None:
    """Allow outbound requests to these hosts (``HOST`` or ``HOST:PORT``) in this process,
    whatever their addresses: the operator's choice (``--allow-outbound-host``)."""
    _added.update(_parse_entries(entries, "--allow-outbound-host"))


def allowed_hosts() -> frozenset[tuple[str, int | None]]:
    """The hosts allowed now: ``allow_hosts`` and ``LOOPWISE_ALLOW_OUTBOUND_HOSTS``."""
    from_env = _parse_entries(os.environ.get(ALLOW_ENV, "").split(","), ALLOW_ENV)
    return frozenset(_added | from_env)


def _is_allowed(host: str, port: int, allowed: frozenset[tuple[str, int | None]]) -> bool:
    host = host.lower().strip("[]")
    return (host, None) in allowed or (host, port) in allowed


def _public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class Target:
    """Where a checked URL goes: its host and port, and the address to connect to (None: the
    host is allowed by the operator and connected to as usual)."""

    url: httpx.URL
    host: str
    port: int
    address: Address | None


def parse_url(url: object, parameter: str) -> tuple[httpx.URL, str, int]:
    """``url`` parsed (an http(s) URL with a host), its host and its port."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidArgumentError(
            f"Expected {parameter} as an http:// or https:// URL, got {_shown(str(url))!r}.",
            parameter=parameter,
        )
    if len(url) > MAX_URL_CHARS:
        raise InvalidArgumentError(
            f"Expected {parameter} as a URL of at most {MAX_URL_CHARS} characters, got {len(url)}.",
            parameter=parameter,
        )
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or not parsed.host:
        raise InvalidArgumentError(
            f"Expected {parameter} as a URL with a host, got {_shown(url)!r}.",
            parameter=parameter,
        )
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return parsed, parsed.host, port


def refusal(url: object, parameter: str = "url") -> str:
    """Why a request to ``url`` would be refused without resolving its host (empty: it may be
    tried): a literal address that is not public, or ``localhost``, unless allowed. For
    checking a record when it is written; ``check_url`` decides when it is used."""
    parsed, host, port = parse_url(url, parameter)
    if _is_allowed(host, port, allowed_hosts()):
        return ""
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return _refused(parsed, host, port, "is loopback")
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return ""
    return "" if _public(address) else _refused(parsed, host, port, f"is {_kind(address)}")


def _kind(address: Address) -> str:
    shown = address
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for name, test in (
        ("a loopback", address.is_loopback),
        ("a link-local", address.is_link_local),
        ("a multicast", address.is_multicast),
        ("an unspecified", address.is_unspecified),
        ("a reserved", address.is_reserved),
        ("a private", address.is_private),
    ):
        if test:
            return f"{name} address ({shown})"
    return f"not a public address ({shown})"


def _refused(url: httpx.URL, host: str, port: int, why: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return (
        f"{_shown(str(url))} {why}: Loopwise does not send requests there unless the operator "
        f"allows the host ({ALLOW_ENV}={shown}:{port}, or --allow-outbound-host {shown}:{port})."
    )


def check_url(url: object, parameter: str = "url") -> Target:
    """Resolve ``url``'s host and check every address (see the module docstring);
    PermissionDeniedError when it may not be reached, InvalidArgumentError for a bad URL."""
    parsed, host, port = parse_url(url, parameter)
    if _is_allowed(host, port, allowed_hosts()):
        return Target(parsed, host, port, None)
    early = refusal(str(url), parameter)
    if early:
        raise PermissionDeniedError(early, parameter=parameter)
    try:
        found = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise PermissionDeniedError(
            f"{_shown(str(parsed))}: cannot resolve host {host!r} ({type(exc).__name__}).",
            parameter=parameter,
        ) from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
    if not addresses:
        raise PermissionDeniedError(
            f"{_shown(str(parsed))}: host {host!r} has no address.", parameter=parameter
        )
    for address in addresses:
        if not _public(address):
            raise PermissionDeniedError(
                _refused(parsed, host, port, f"resolves to {_kind(address)}"),
                parameter=parameter,
            )
    return Target(parsed, host, port, addresses[0])


def fetch(
    method: str,
    url: str,
    *,
    json: Any = None,
    timeout_s: float = 5.0,
    max_bytes: int = MAX_RESPONSE_BYTES,
    parameter: str = "url",
    transport: httpx.BaseTransport | None = None,
) -> httpx.Response:
    """One request to ``url`` once ``check_url`` allows it; the answer, read up to ``max_bytes``
    (more is an httpx.HTTPError). Redirects are answers, never followed. Raises
    PermissionDeniedError (refused), InvalidArgumentError (bad URL) or httpx.HTTPError.

    A ``transport`` (tests, or a caller's own routing) decides where the request goes: then
    only what ``refusal`` sees is checked, and no name is resolved here."""
    if transport is None:
        target = check_url(url, parameter)
    else:
        early = refusal(url, parameter)
        if early:
            raise PermissionDeniedError(early, parameter=parameter)
        parsed, host, port = parse_url(url, parameter)
        target = Target(parsed, host, port, None)
    request_url, headers, extensions = target.url, {}, {}
    if target.address is not None:
        # Connect to the address checked; the server still sees (and TLS checks) the name.
        request_url = target.url.copy_with(host=str(target.address))
        headers["Host"] = target.url.netloc.decode("ascii")
        extensions["sni_hostname"] = target.host
    with (
        httpx.Client(
            transport=transport, timeout=timeout_s, follow_redirects=False, trust_env=False
        ) as client,
        client.stream(
            method, request_url, json=json, headers=headers, extensions=extensions
        ) as response,
    ):
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise httpx.DecodingError(
                    f"the answer of {_shown(url)} is larger than {max_bytes} bytes",
                    request=response.request,
                )
        return httpx.Response(
            response.status_code,
            headers={"Content-Type": response.headers.get("Content-Type", "")},
            content=bytes(body),
            request=httpx.Request(method, target.url),
        )
