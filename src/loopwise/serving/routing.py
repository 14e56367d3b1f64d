"""The inference server's route table: one table serves dispatch, 405s and 404s.

A ``Route`` answers a request ``Match.FULL`` (its path, its method), ``Match.PARTIAL`` (its path,
another method) or ``Match.NONE``; the ``Router`` runs the first full match, answers the first
partial one 405 with ``Allow``, and anything else 404 (Starlette's ``Route.matches`` and
``Router.app``, without the framework: a static path is one dict lookup).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any, Generic, TypeVar

from loopwise.errors import NotFoundError
from loopwise.serving.http import JSON_HEADERS, Exchange, Response, dumps

__all__ = ["Handler", "Match", "Route", "Router", "method_not_allowed", "no_route"]

P = TypeVar("P")
Handler = Callable[[Exchange, P], Awaitable[Response]]
"""A route's handler: the request and its path parameter (None on a static path)."""


class Match(enum.Enum):
    NONE = 0
    PARTIAL = 1
    FULL = 2


class Route(Generic[P]):
    """``path`` is static (``/ping``) or has one parameter (``/v2/models/{model}/infer``): the
    text between the literal prefix and suffix, read by ``param``, which raises
    ``NotFoundError`` for a malformed one. A request with one of the route's ``methods`` whose
    path has that prefix and suffix is the route's (FULL), and a malformed parameter is a 404
    saying why; with another method, only a well-formed parameter makes it PARTIAL (a 405).
    """

    __slots__ = ("_least", "_prefix", "_suffix", "handler", "methods", "param", "path")

    def __init__(
        self,
        path: str,
        methods: Collection[str],
        handler: Handler[P],
        param: Callable[[str], P] | None = None,
    ) -> None:
        self.path = path
        self.methods = frozenset(methods)
        self.handler = handler
        self.param = param
        prefix, brace, rest = path.partition("{")
        name, closed, suffix = rest.partition("}")
        if (param is not None) != bool(brace and closed and name and "{" not in suffix):
            raise ValueError(
                f"Route {path!r}: expected one {{parameter}} in the path and a param reader "
                "for it, or neither."
            )
        self._prefix, self._suffix = prefix, suffix
        self._least = len(prefix) + len(suffix)

    @property
    def static(self) -> bool:
        return self.param is None

    def matches(self, method: str, path: str) -> tuple[Match, P | None]:
        """How this route matches the request, and its path parameter (read on a full match)."""
        param = self.param
        if param is None:
            if path != self.path:
                return Match.NONE, None
            return (Match.FULL if method in self.methods else Match.PARTIAL), None
        if not (
            len(path) >= self._least
            and path.startswith(self._prefix)
            and path.endswith(self._suffix)
        ):
            return Match.NONE, None
        raw = path[len(self._prefix) : len(path) - len(self._suffix)]
        if method in self.methods:
            return Match.FULL, param(raw)  # a malformed parameter: a 404 that says why
        try:
            param(raw)
        except NotFoundError:
            return Match.NONE, None
        return Match.PARTIAL, None


class Router:
    """The routes in order; ``match`` finds the one a request is for, or raises its 405/404.

    Static paths are looked up in a dict first (the hot routes cost what an ``if`` did); the
    parametrised routes are then tried in order. No static path also matches a parametrised
    route (the parametrised ones all sit under ``/v2/models/``)."""

    def __init__(self, routes: Iterable[Route[Any]]) -> None:
        self.routes = list(routes)
        self._static = {r.path: r for r in reversed(self.routes) if r.static}  # first one wins
        self._parametrised = [r for r in self.routes if not r.static]

    def match(self, method: str, path: str) -> tuple[Route[Any], Any]:
        """The route that answers the request and its path parameter; a ``Response`` (405) is
        raised when only other methods are routed at the path, ``NotFoundError`` when none is."""
        route = self._static.get(path)
        if route is not None:
            if method in route.methods:
                return route, None
            raise method_not_allowed(method, path, route.methods)
        partial = None
        for route in self._parametrised:
            match, value = route.matches(method, path)
            if match is Match.FULL:
                return route, value
            if match is Match.PARTIAL and partial is None:
                partial = route
        if partial is not None:
            raise method_not_allowed(method, path, partial.methods)
        raise no_route(path)


def method_not_allowed(method: str, path: str, allowed: Collection[str]) -> Response:
    """The 405 for ``method`` at ``path``, with its ``Allow`` header (OIP's shape under /v2)."""
    message = f"{method} is not allowed on {path}; use {' or '.join(sorted(allowed))}."
    error = {"code": "method_not_allowed", "message": message, "details": {}}
    return Response(
        405,
        dumps({**error, "error": message} if path.startswith("/v2") else {"error": error}),
        [*JSON_HEADERS, (b"allow", ", ".join(sorted(allowed)).encode())],
    )


def no_route(path: str) -> NotFoundError:
    """The 404 for a path that no route answers."""
    return NotFoundError(
        f"No route {path!r}. The server answers /v2 (Open Inference Protocol), "
        "/invocations, /predict, /ping and /metrics.",
        path=path,
    )
