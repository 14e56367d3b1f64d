"""The inference server's HTTP plumbing, with no web framework: responses, errors, headers.

``Exchange`` is one request as the server handles it (its body, and what metrics and the
prediction log record); ``Response`` is a finished answer, raised or returned. The routes are
in ``routing.py``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, ParamSpec, TypeVar

import orjson

from loopwise.errors import (
    HTTP_STATUS,
    InvalidArgumentError,
    LoopwiseError,
    PayloadTooLargeError,
    UnavailableError,
)

__all__ = [
    "INLINE_PARSE_BYTES",
    "JSON_HEADERS",
    "Exchange",
    "Receive",
    "Response",
    "Scope",
    "Send",
    "decode",
    "dumps",
    "error_response",
    "header",
    "request_deadline",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]
MAX_REQUEST_ID_CHARS = 256
INLINE_PARSE_BYTES = 64 * 1024
"""Bodies up to this size are parsed and checked on the event loop (microseconds, no thread
hop); larger ones, and every CSV body (pandas), in a worker thread, so that one big request
never holds up the others."""
A = ParamSpec("A")
T = TypeVar("T")


class Response(Exception):
    """A finished response raised out of a handler (errors and plain JSON alike)."""

    def __init__(
        self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers or JSON_HEADERS


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def error_response(exc: LoopwiseError, oip: bool) -> Response:
    status = HTTP_STATUS.get(exc.code, 500)
    # The Open Inference Protocol's error is {"error": "<message>"} (clients such as
    # tritonclient read it as a string); our code and details ride alongside.
    body = (
        {"error": exc.message, "code": exc.code, "details": exc.details} if oip else exc.to_dict()
    )
    headers = list(JSON_HEADERS)
    if isinstance(exc, UnavailableError):
        headers.append((b"retry-after", str(max(1, math.ceil(exc.retry_after_s))).encode()))
    return Response(status, dumps(body), headers)


class Exchange:
    """One request as the server handles it: its body (at most ``max_body_bytes``), and what
    metrics and the prediction log record."""

    __slots__ = (
        "arrived_ms",
        "logged",
        "max_body_bytes",
        "model",
        "off_loop",
        "protocol",
        "receive",
        "request_id",
        "scope",
        "started",
        "version",
    )

    def __init__(self, scope: Scope, receive: Receive, max_body_bytes: int) -> None:
        self.scope = scope
        self.receive = receive
        self.max_body_bytes = max_body_bytes
        self.started = time.perf_counter()
        self.arrived_ms = int(time.time() * 1000)
        self.model: str | None = None
        self.version: int | None = None
        self.protocol = ""
        self.logged = False  # its rows are in the prediction log already (by the model process)
        self.off_loop = False  # a large request: parsed and checked in a thread, not on the loop
        self.request_id: str | None = header(scope, b"x-request-id", None)

    def check(self) -> None:
        request_id = self.request_id
        if request_id is None:
            return
        if not 0 < len(request_id) <= MAX_REQUEST_ID_CHARS:
            self.request_id = None  # not echoed back
            raise InvalidArgumentError(
                f"X-Request-Id has {len(request_id)} characters; expected 1 to "
                f"{MAX_REQUEST_ID_CHARS}. Send a shorter id, or none (the server then makes one).",
                field="X-Request-Id",
            )
        # Header values arrive as bytes (read as latin-1); an id is logged and echoed, so only
        # printable ASCII is taken: no control characters, nothing that changes on the way back.
        if not (request_id.isascii() and request_id.isprintable()):
            self.request_id = None
            raise InvalidArgumentError(
                "X-Request-Id must be printable ASCII (space to '~'); it has other characters. "
                "Send an id such as a UUID, or none (the server then makes one).",
                field="X-Request-Id",
            )

    def served(self, model: str, protocol: str) -> None:
        self.model, self.protocol = model, protocol

    async def body(self) -> bytes:
        """The whole request body; over ``max_body_bytes`` is a 413."""
        chunks = []
        size = 0
        receive = self.receive
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise PayloadTooLargeError(
                        f"The request body is over {self.max_body_bytes} bytes; send fewer rows "
                        "per request.",
                        limit=self.max_body_bytes,
                    )
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def decode(
    record: Exchange, off_loop: bool, parse: Callable[A, T], *args: A.args, **kwargs: A.kwargs
) -> T:
    """``parse(*args)`` on the event loop, or in a worker thread when ``off_loop`` (a large
    body: see ``INLINE_PARSE_BYTES``), which the request then remembers."""
    if off_loop:
        record.off_loop = True
        return await asyncio.to_thread(parse, *args, **kwargs)
    return parse(*args, **kwargs)


def header(scope: Scope, name: bytes, default: str | None) -> Any:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return default


def request_deadline(scope: Scope) -> float | None:
    raw = header(scope, b"x-deadline-ms", None)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (0 < value <= 3_600_000):
        raise InvalidArgumentError(
            f"X-Deadline-Ms is {raw[:40]!r}; expected a number of milliseconds between 0 and 3600000.",
            field="X-Deadline-Ms",
        )
    return value / 1000
