"""Which ``Host`` names the control plane answers to.

With authentication off every caller is an admin, and only the loopback interface stands
between the API and the world. A web page can cross that line by DNS rebinding: its own name
re-resolves to 127.0.0.1 and the browser, believing it talks to the page's site, sends requests
to the local server with the page's name in ``Host``. Answering only loopback names (and those
an operator lists) closes that path; with authentication on a page has no token to send.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from starlette.responses import JSONResponse

from loopwise.errors import HTTP_STATUS, InvalidArgumentError

__all__ = ["LOOPBACK_NAMES", "HostCheckMiddleware", "host_name"]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
"""Accepted with any port when authentication is off (and any other 127.x.y.z address)."""

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port, lower case: ``[::1]:8080`` → ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        name = header[1 : header.find("]")] if "]" in header else header[1:]
    else:
        name = header.rsplit(":", 1)[0] if header.count(":") == 1 else header
    return name.rstrip(".")


def _is_loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostCheckMiddleware:
    """Answer 400 to a request whose ``Host`` is neither a loopback name nor one of
    ``allowed_hosts`` (``"*"`` allows any). A request without ``Host`` (HTTP/1.0, never a
    browser) passes."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.allowed = {host_name(h) for h in allowed_hosts}

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http" or "*" in self.allowed:
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope.get("headers", []) if k == b"host"), None)
        if header is None:
            await self.app(scope, receive, send)
            return
        name = host_name(header.decode("latin-1"))
        if _is_loopback(name) or name in self.allowed:
            await self.app(scope, receive, send)
            return
        shown = header.decode("latin-1")
        shown = shown if len(shown) <= 100 else shown[:100] + "…"
        error = InvalidArgumentError(
            f"Expected a Host header naming this server (localhost, 127.0.0.1 or [::1], with "
            f"any port{', or ' + ', '.join(sorted(self.allowed)) if self.allowed else ''}), "
            f"got {shown!r}. The server answers only these names, so that a web page cannot "
            "reach it by DNS rebinding. Use one of them, or start the server with "
            "--allowed-host NAME.",
            parameter="Host",
        )
        response = JSONResponse(
            error.to_dict(),
            status_code=HTTP_STATUS[error.code],
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
