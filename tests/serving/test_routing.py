"""The inference server's route table: full, partial and no matches, and the 405s and 404s
they give through the app."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from loopwise.errors import NotFoundError
from loopwise.serving import create_serving_app
from loopwise.serving.handlers.oip import ModelRef, model_path
from loopwise.serving.http import Exchange, Response
from loopwise.serving.routing import Match, Route, Router


async def _static(record: Exchange, _: None) -> Response:
    return Response(200, b"{}")


async def _model(record: Exchange, model: ModelRef) -> Response:
    return Response(200, b"{}")


INFER = Route("/v2/models/{model}/infer", ["POST"], _model, model_path)
READY = Route("/v2/models/{model}/ready", ["GET"], _model, model_path)
METADATA = Route("/v2/models/{model}", ["GET"], _model, model_path)
PING = Route("/ping", ["GET"], _static)
ROUTER = Router([PING, INFER, READY, METADATA])


@pytest.mark.parametrize(
    ("route", "method", "path", "match", "param"),
    [
        (PING, "GET", "/ping", Match.FULL, None),
        (PING, "POST", "/ping", Match.PARTIAL, None),
        (PING, "GET", "/ping/", Match.NONE, None),
        (INFER, "POST", "/v2/models/m/infer", Match.FULL, ("m", None)),
        (INFER, "POST", "/v2/models/m/versions/2/infer", Match.FULL, ("m", "2")),
        (INFER, "PUT", "/v2/models/m/infer", Match.PARTIAL, None),
        (INFER, "PUT", "/v2/models/a/b/infer", Match.NONE, None),  # malformed: no 405
        (INFER, "POST", "/v2/models/infer", Match.NONE, None),  # prefix and suffix overlap
        (METADATA, "GET", "/v2/models/ready", Match.FULL, ("ready", None)),
        (READY, "GET", "/v2/models/ready", Match.NONE, None),
    ],
)  # fmt: skip
def test_a_route_matches_full_partial_or_not(
    route: Route[Any], method: str, path: str, match: Match, param: Any
) -> None:
    assert route.matches(method, path) == (match, param)


def test_a_full_match_with_a_malformed_parameter_says_why() -> None:
    with pytest.raises(NotFoundError, match=r"No route /v2/models/a/b\. Use /v2/models/NAME"):
        INFER.matches("POST", "/v2/models/a/b/infer")


def test_the_router_takes_the_first_full_match_else_a_405_else_a_404() -> None:
    assert ROUTER.match("GET", "/v2/models/m/ready") == (READY, ("m", None))
    assert ROUTER.match("GET", "/v2/models/m") == (METADATA, ("m", None))
    with pytest.raises(Response) as refused:
        ROUTER.match("DELETE", "/v2/models/m/versions/1/infer")
    assert refused.value.status == 405 and (b"allow", b"POST") in refused.value.headers
    with pytest.raises(NotFoundError, match="No route '/v2/models/a/b/c'"):
        ROUTER.match("DELETE", "/v2/models/a/b/c")


def test_a_route_needs_one_parameter_and_its_reader_or_neither() -> None:
    with pytest.raises(ValueError, match="expected one"):
        Route("/v2/models/{model}", ["GET"], _model)
    with pytest.raises(ValueError, match="expected one"):
        Route("/ping", ["GET"], _model, model_path)


def _answer(method: str, path: str) -> tuple[int, dict[str, Any], dict[bytes, bytes]]:
    app = create_serving_app({})
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "query_string": b"", "headers": []}
    asyncio.run(app(scope, receive, send))
    app.close()
    return sent[0]["status"], orjson.loads(sent[1]["body"]), dict(sent[0]["headers"])


@pytest.mark.parametrize(
    ("method", "path", "status", "allow", "message"),
    [
        ("GET", "/invocations", 405, b"POST", "GET is not allowed on /invocations; use POST."),
        ("HEAD", "/ping", 405, b"GET", "HEAD is not allowed on /ping; use GET."),
        ("POST", "/metrics", 405, b"GET", "POST is not allowed on /metrics; use GET."),
        ("GET", "/metrics", 404, None, "No route '/metrics'."),  # an app without metrics
        ("PUT", "/v2/models/m/infer", 405, b"POST", "PUT is not allowed on /v2/models/m/infer; use POST."),
        ("POST", "/v2/models/m/ready", 405, b"GET", "POST is not allowed on /v2/models/m/ready; use GET."),
        ("PUT", "/v2/models/m/versions/infer", 405, b"GET", "use GET."),
        ("GET", "/v2/models/m/infer", 404, None, "No route /v2/models/m/infer. Use"),
        ("GET", "/v2/models/m/versions/ready", 404, None, "No route /v2/models/m/versions. Use"),
        ("POST", "/v2/models/m/versions/infer", 404, None, "No route /v2/models/m/versions. Use"),
        ("GET", "/v2/models/", 404, None, "No route /v2/models/. Use"),
        ("POST", "/v2/models/a/b", 404, None, "No route '/v2/models/a/b'."),
        ("PUT", "/v2/models/a/b/c", 404, None, "No route '/v2/models/a/b/c'."),
        ("GET", "/nowhere", 404, None, "No route '/nowhere'."),
    ],
)  # fmt: skip
def test_wrong_methods_and_paths_through_the_app(
    method: str, path: str, status: int, allow: bytes | None, message: str
) -> None:
    got, body, headers = _answer(method, path)
    assert got == status
    assert headers.get(b"allow") == allow
    oip = path.startswith("/v2")  # the Open Inference Protocol's {"error": "<message>"}
    code, text = (
        (body["code"], body["error"]) if oip else (body["error"]["code"], body["error"]["message"])
    )
    assert code == ("method_not_allowed" if status == 405 else "not_found")
    assert message in text
