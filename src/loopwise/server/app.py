"""The control-plane application: ``create_app(store)`` builds the REST API over one store.

Routes live in ``loopwise.server.routes``; this module wires them together with the pieces every
request shares, outermost first: the Host check, authentication (before any body is read), the
body's size and time limits, and the one JSON error envelope.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from loopwise.errors import HTTP_STATUS, LoopwiseError, PayloadTooLargeError, RequestTimeoutError
from loopwise.server.auth import AuthMiddleware, Permission, declared_permission
from loopwise.server.blob_access import BlobAccess
from loopwise.server.host_check import HostCheckMiddleware
from loopwise.server.routes import (
    access,
    autopilot,
    blobs,
    catalog,
    deployments,
    monitoring,
    predictions,
    runs,
)
from loopwise.server.schemas import ErrorBody, Health
from loopwise.store import Store
from loopwise.store.migrate import HEAD
from loopwise.version import loopwise_version

if TYPE_CHECKING:
    from loopwise.autopilot.settings import OperatorSettings

__all__ = ["API_PREFIX", "BODY_TIMEOUT_S", "MAX_BODY_BYTES", "create_app"]

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
MAX_BODY_BYTES = 32 * 1024 * 1024
"""JSON request bodies larger than this are refused with 413 (blob uploads are streamed)."""
BODY_TIMEOUT_S = 60.0
"""A JSON request body must arrive whole within this many seconds, else 408 (blob uploads are
streamed and bounded by the HTTP server's idle timeout instead)."""

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in [
        (400, "Invalid argument: the message says what was expected and what came"),
        (401, "No token, or an unknown or revoked one"),
        (403, "The token's role or project does not allow this"),
        (404, "Not found"),
        (409, "Conflicts with the current state"),
        (413, "Request body too large"),
        (422, "The request does not match the model's signature"),
    ]
}


def error_response(error: LoopwiseError, *, close: bool = False) -> JSONResponse:
    """The envelope for ``error``; ``close`` when the request's body was not read to its end,
    so that the HTTP server hangs up rather than read (or wait for) the rest."""
    headers = {"Connection": "close"} if close else None
    return JSONResponse(
        error.to_dict(), status_code=HTTP_STATUS.get(error.code, 500), headers=headers
    )


ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_body_bytes`` with 413, counting streamed bytes too, and
    bodies that take longer than ``body_timeout_s`` to arrive with 408.

    The body is read here, after authentication and before the app sees it, so that a chunked
    body without a Content-Length is refused as soon as it passes the limit (an error raised
    while the app parses the body would come out as a 400), and a client trickling a body
    cannot hold a request open for good. Blob uploads (``PUT /api/v1/blobs/…``) are exempt:
    they stream to disk and may be large and long.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, body_timeout_s: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http" or (
            scope["method"] == "PUT" and scope["path"].startswith(f"{API_PREFIX}/blobs/")
        ):
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        too_large = error_response(
            PayloadTooLargeError(
                f"Expected a request body of at most {limit} bytes. Send fewer items per "
                "request (e.g. metrics in batches of 10,000), or upload files as blobs.",
                max_bytes=limit,
            ),
            close=True,
        )
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await too_large(scope, receive, send)
                return
        messages: list[Any] = []
        received = 0
        with anyio.move_on_after(self.body_timeout_s) as deadline:
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request":
                    break  # the client went away; the app sees the disconnect
                received += len(message.get("body", b""))
                if received > limit:
                    await too_large(scope, receive, send)
                    return
                if not message.get("more_body", False):
                    break
        if deadline.cancelled_caught:
            await _body_too_slow(self.body_timeout_s, received)(scope, receive, send)
            return

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def _body_too_slow(timeout_s: float, received_bytes: int) -> JSONResponse:
    error = RequestTimeoutError(
        f"Expected the request body within {timeout_s:g} s; {received_bytes} bytes came in "
        "that time. Send the body at once, as HTTP clients do (large files go to the blob "
        "upload, which streams).",
        timeout_s=timeout_s,
        received_bytes=received_bytes,
    )
    return JSONResponse(
        error.to_dict(), status_code=error.http_status, headers={"Connection": "close"}
    )


def _validation_message(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    errors = exc.errors()
    if errors and errors[0].get("type") == "json_invalid":
        # FastAPI's own message is "JSON decode error"; the parser's says what and where.
        where = errors[0].get("loc", ("body", "?"))[-1]
        reason = errors[0].get("ctx", {}).get("error", "invalid JSON")
        problem = {"field": "body", "problem": f"invalid JSON: {reason}", "position": where}
        message = (
            f"Expected a JSON request body, got invalid JSON at character {where}: {reason}. "
            "Send the body with Content-Type: application/json, encoded with a JSON library."
        )
        return message, [problem]
    problems = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()))
        received = err.get("input")
        problems.append(
            {"field": where, "problem": err.get("msg", ""), "received": repr(received)[:200]}
        )
    first = problems[0] if problems else {"field": "body", "problem": "invalid", "received": ""}
    message = (
        f"Invalid request: {first['field']}: {first['problem']} (received {first['received']})."
    )
    if len(problems) > 1:
        message += f" And {len(problems) - 1} more problem(s), listed in details."
    return message + " See /docs for the expected shape.", problems


def create_app(
    store: Store,
    *,
    auth: bool = True,
    max_body_bytes: int = MAX_BODY_BYTES,
    body_timeout_s: float = BODY_TIMEOUT_S,
    autopilot_every_s: float = 0,
    autopilot_settings: OperatorSettings | None = None,
    allowed_hosts: Sequence[str] = (),
    accept_pickle_models: bool = False,
) -> FastAPI:
    """The REST API over ``store``. With ``auth`` false every caller is an admin, and only
    requests whose ``Host`` is a loopback name (or one of ``allowed_hosts``) are answered; with
    ``auth`` on, ``allowed_hosts`` (if any) limits the names too (``"*"``: any).
    JSON bodies over ``max_body_bytes`` get 413, and those slower than ``body_timeout_s`` 408.
    With ``autopilot_every_s`` > 0, while the app runs (its lifespan) a thread ticks every
    deployment with an autopilot policy that often (``server/autopilot_loop.py``), allowed
    what ``autopilot_settings`` allow (None: the environment's). Model versions stored with
    pickle are refused unless ``accept_pickle_models``."""
    lifespan = None
    if autopilot_every_s != 0:
        from loopwise.server.autopilot_loop import autopilot_lifespan

        lifespan = autopilot_lifespan(autopilot_every_s, autopilot_settings)
    app = FastAPI(
        lifespan=lifespan,
        title="Loopwise control plane",
        version=loopwise_version(),
        description="Projects, runs, metrics, artifacts, datasets and models of one Loopwise "
        "store. Send a token as `Authorization: Bearer lw_…` (create one with "
        "`loopwise token create`).",
        docs_url=None,  # served below from bundled files, so /docs and /redoc work offline
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    _api_pages(app)
    # Routes and middleware read these at request time, never capture them.
    app.state.store = store
    app.state.auth = auth
    app.state.blob_access = BlobAccess()
    app.state.accept_pickle_models = accept_pickle_models

    @app.exception_handler(LoopwiseError)
    async def _loopwise_error(_: Request, exc: LoopwiseError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, problems = _validation_message(exc)
        from loopwise.errors import InvalidArgumentError

        return error_response(InvalidArgumentError(message, problems=problems))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "invalid_argument", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        message = str(exc.detail)
        if exc.status_code == 400:  # FastAPI's answer to a body it cannot parse at all
            message = (
                f"Expected a JSON request body, got one that cannot be parsed ({message}). "
                "Send the body with Content-Type: application/json, encoded with a JSON library."
            )
        if exc.status_code == 404:
            message = f"No API route {request.method} {request.url.path}. See /docs for the routes."
        body = {"error": {"code": code, "message": message, "details": {}}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("Unexpected error in %s %s", request.method, request.url.path)
        body = {
            "error": {
                "code": "internal",
                "message": f"Internal error ({type(exc).__name__}); the server log has the "
                "traceback. Please report it.",
                "details": {},
            }
        }
        return JSONResponse(body, status_code=500)

    @app.get("/health", response_model=Health, tags=["server"])
    def health() -> Health:
        """Liveness: the server answers. No token needed."""
        return Health(status="ok", version=loopwise_version(), schema_revision=HEAD)

    routes: list[tuple[str, set[str], Permission]] = []
    for module in (runs, catalog, deployments, autopilot, predictions, monitoring, blobs, access):
        app.include_router(module.router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
        routes += [
            (
                API_PREFIX + route.path,
                route.methods or set(),
                declared_permission(route.openapi_extra),
            )
            for route in module.router.routes
            if isinstance(route, APIRoute)
        ]
    public = ["/health", app.openapi_url, DOCS_URL, REDOC_URL, DOCS_URL + "/static/{file:path}"]
    routes += [(url, {"GET"}, Permission.PUBLIC) for url in public if url]

    # The last added runs first: authentication before anything reads the body.
    app.add_middleware(
        BodyLimitMiddleware, max_body_bytes=max_body_bytes, body_timeout_s=body_timeout_s
    )
    app.add_middleware(AuthMiddleware, routes=routes)
    if not auth or allowed_hosts:
        app.add_middleware(HostCheckMiddleware, allowed_hosts=allowed_hosts)
    return app


DOCS_URL = "/docs"
REDOC_URL = "/redoc"


def _api_pages(app: FastAPI) -> None:
    """Swagger UI at ``/docs`` and ReDoc at ``/redoc``, from the files the ``fastapi-offline``
    package ships (FastAPI's own pages load them from a CDN, so they are blank on a machine
    without internet access)."""
    static = DOCS_URL + "/static"
    folder = files("fastapi_offline") / "static"
    app.mount(static, StaticFiles(directory=str(folder)), name="api-pages")
    openapi = app.openapi_url or "/openapi.json"
    title = f"{app.title} - API"

    @app.get(DOCS_URL, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi,
            title=title,
            swagger_js_url=f"{static}/swagger-ui-bundle.js",
            swagger_css_url=f"{static}/swagger-ui.css",
            swagger_favicon_url=f"{static}/favicon.png",
        )

    @app.get(REDOC_URL, include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi,
            title=title,
            redoc_js_url=f"{static}/redoc.standalone.js",
            redoc_favicon_url=f"{static}/favicon.png",
            with_google_fonts=False,
        )
