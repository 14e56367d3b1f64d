"""Run an ASGI app with uvicorn under limits that a slow or idle client cannot outlast.

uvicorn times out a connection only between two requests (keep-alive); a client that opens a
connection and sends nothing, or half a request line, holds a file descriptor for good. Here the
HTTP protocol gives each request's head ``timeout_headers_s`` from its first byte (or from the
connection's start), and each pause inside a body ``timeout_body_s``; past ``limit_concurrency``
connections, the one that has waited longest for a request head (idle or slow) makes room for a
new one. Both ``loopwise server`` and ``loopwise serve`` run through ``run_app``.
"""

from __future__ import annotations

import resource
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopwise.cli.output import err_console
from loopwise.errors import require_extra

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "HttpLimits",
    "LimitConcurrencyOption",
    "LogLevel",
    "TimeoutBodyOption",
    "TimeoutHeadersOption",
    "TimeoutKeepAliveOption",
    "guarded_protocol",
    "run_app",
]

FILES_KEPT_FOR_WORK = 64
"""Descriptors left for the store, logs and model processes when the connection limit is
lowered to fit the process's open-file limit."""


@dataclass(frozen=True)
class HttpLimits:
    limit_concurrency: int = 1000
    """Connections at once; past it the longest-waiting idle one is closed, and requests get
    503 while every connection is busy."""
    timeout_keep_alive_s: int = 5
    """An idle connection between two requests is closed after this long."""
    timeout_headers_s: float = 10.0
    """A request line and headers must arrive within this long of their first byte."""
    timeout_body_s: float = 30.0
    """The longest pause allowed between two pieces of a request body."""


class LogLevel(StrEnum):
    """uvicorn's log levels."""

    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"
    trace = "trace"


LimitConcurrencyOption = Annotated[
    int,
    typer.Option(
        "--limit-concurrency",
        min=1,
        help="Most connections at once (lowered to fit the open-file limit, ulimit -n): past "
        "it the one idle longest is closed, and requests get 503 while all are busy.",
    ),
]
TimeoutKeepAliveOption = Annotated[
    int,
    typer.Option(
        "--timeout-keep-alive",
        min=1,
        help="Seconds an idle connection is kept open between two requests.",
    ),
]
TimeoutHeadersOption = Annotated[
    float,
    typer.Option(
        "--timeout-headers",
        min=0.1,
        help="Seconds a client has to send a request's line and headers, from their first "
        "byte (or from connecting); slower connections are closed.",
    ),
]
TimeoutBodyOption = Annotated[
    float,
    typer.Option(
        "--timeout-body",
        min=0.1,
        help="Longest pause, in seconds, between two pieces of a request body; a client that "
        "stops sending is disconnected.",
    ),
]

# Per server: connections waiting for a request head (new, between requests, or sending one),
# oldest first; the first to go when a new connection needs room.
_WAITING: weakref.WeakKeyDictionary[Any, OrderedDict[Any, None]] = weakref.WeakKeyDictionary()


def guarded_protocol(limits: HttpLimits) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with ``limits``' head and body timeouts and eviction."""
    require_extra("httptools", "server")
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pending_requests = 0  # heads received whose responses are not complete
            self._in_body = False
            self._head_timer: asyncio.TimerHandle | None = None
            self._body_timer: asyncio.TimerHandle | None = None
            self._waiting = _WAITING.setdefault(self.server_state, OrderedDict())

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._waiting[self] = None
            limit = self.limit_concurrency
            while limit is not None and len(self.connections) >= limit:
                victim = next((p for p in self._waiting if p is not self), None)
                if victim is None:
                    break  # every other connection is busy: this one's request gets 503
                victim._hang_up()
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._waiting.pop(self, None)
            for timer in (self._head_timer, self._body_timer):
                if timer is not None:
                    timer.cancel()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.transport.is_closing():
                return
            if self._in_body:
                self._arm_body_timer()
            elif self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None
            if self._pending_requests == 0 and self.timeout_keep_alive_task is None:
                self._arm_head_timer()  # bytes of a new request head (uvicorn's timer is off)

        def on_headers_complete(self) -> None:
            self._pending_requests += 1
            self._in_body = True
            self._waiting.pop(self, None)
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_body = False
            super().on_message_complete()

        def on_response_complete(self) -> None:
            self._pending_requests = max(self._pending_requests - 1, 0)
            if self._pending_requests == 0 and not self.transport.is_closing():
                self._waiting[self] = None
            super().on_response_complete()

        def _arm_head_timer(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(limits.timeout_headers_s, self._head_late)

        def _head_late(self) -> None:
            self._head_timer = None
            self._hang_up()

        def _arm_body_timer(self) -> None:
            if self._body_timer is not None:
                self._body_timer.cancel()
            self._body_timer = self.loop.call_later(limits.timeout_body_s, self._body_stalled)

        def _body_stalled(self) -> None:
            self._body_timer = None
            if self.flow.read_paused:  # the app is not reading yet: the client is not to blame
                self._arm_body_timer()
            elif self._in_body:
                self._hang_up()

        def _hang_up(self) -> None:
            self._waiting.pop(self, None)
            if not self.transport.is_closing():
                self.transport.close()

    return GuardedHttpToolsProtocol


def _fitting_limit(limit: int) -> int:
    """``limit``, lowered so that connections cannot take every descriptor the process has."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or limit <= soft - FILES_KEPT_FOR_WORK:
        return limit
    fitting = max(soft - FILES_KEPT_FOR_WORK, 1)
    err_console.print(
        f"--limit-concurrency {limit} lowered to {fitting}: this process may open {soft} files "
        f"(ulimit -n), and keeps {FILES_KEPT_FOR_WORK} for its own work. Raise ulimit -n to "
        "allow more connections.",
        highlight=False,
    )
    return fitting


def run_app(app: Any, *, host: str, port: int, limits: HttpLimits, **options: Any) -> None:
    """``uvicorn.run(app, …)`` with ``limits``; ``options`` go to uvicorn as they are."""
    uvicorn = require_extra("uvicorn", "server")
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=guarded_protocol(limits),
        limit_concurrency=_fitting_limit(limits.limit_concurrency),
        timeout_keep_alive=limits.timeout_keep_alive_s,
        **options,
    )
