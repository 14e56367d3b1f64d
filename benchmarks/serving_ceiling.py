"""The HTTP ceiling for ``benchmarks/serving.py``: a raw ASGI callable that reads the body and
returns a constant, run on the same uvicorn (uvloop + httptools) that ``loopwise serve`` uses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
HEADERS = [(b"content-type", b"application/json")]
BODY = b'{"predictions":[1]}'


async def app(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
