"""Who is calling, and what they may do.

``AuthMiddleware`` turns the bearer token into a ``Caller`` and makes it the actor that the
store's audit log records. It refuses a request whose route needs a permission the caller lacks
before anything reads the request's body; each route then asks
``caller.check(permission, project)`` for the project it touches.

Roles: a viewer reads, an editor reads and writes, an admin also manages tokens and reads the
audit log. A token with a project sees that project alone.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import anyio.to_thread
from starlette.responses import JSONResponse
from starlette.routing import compile_path

from loopwise.errors import HTTP_STATUS, AuthenticationError, LoopwiseError, PermissionDeniedError
from loopwise.store import Store
from loopwise.store.actor import Actor, acting_as, current_actor
from loopwise.store.entities import Role, Token

__all__ = ["AuthMiddleware", "Caller", "Permission", "caller", "declared_permission", "permission"]


class Permission(StrEnum):
    PUBLIC = "public"
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


_GRANTS = {
    Role.VIEWER: {Permission.READ},
    Role.EDITOR: {Permission.READ, Permission.WRITE},
    Role.ADMIN: {Permission.READ, Permission.WRITE, Permission.ADMIN},
}


def permission(needed: Permission) -> dict[str, Any]:
    """``openapi_extra`` naming the permission a route needs (read by ``AuthMiddleware``,
    tests and clients)."""
    return {"x-loopwise-permission": needed.value}


def declared_permission(openapi_extra: dict[str, Any] | None) -> Permission:
    """The permission a route declared with ``permission(…)``; public if none."""
    return Permission((openapi_extra or {}).get("x-loopwise-permission", Permission.PUBLIC))


@dataclass(frozen=True)
class Caller:
    role: Role
    project: str | None
    """The only project this caller may touch, or None for all."""
    actor: Actor
    token: Token | None = None
    """The token the caller sent (None when authentication is off and none was sent)."""

    def may(self, needed: Permission, project: str | None = None) -> bool:
        if needed is Permission.PUBLIC:
            return True
        if needed not in _GRANTS[self.role]:
            return False
        return self.project is None or project is None or project == self.project

    def may_see(self, project: str) -> bool:
        return self.project is None or project == self.project

    def check(self, needed: Permission, project: str | None = None) -> None:
        if needed not in _GRANTS[self.role] and needed is not Permission.PUBLIC:
            raise PermissionDeniedError(
                f"This needs the {needed.value} permission, which a {self.role.value} token "
                f"does not have. Ask an admin for a token with a role that has it "
                f"({', '.join(r.value for r in Role if needed in _GRANTS[r])}).",
                role=self.role.value,
                needed=needed.value,
            )
        if needed is Permission.ADMIN and self.project is not None:
            raise PermissionDeniedError(
                f"This needs an admin token for all projects; this token is limited to project "
                f"{self.project!r}.",
                role=self.role.value,
                needed=needed.value,
            )
        if self.project is not None and project is not None and project != self.project:
            raise PermissionDeniedError(
                f"This token is limited to project {self.project!r} and cannot touch project "
                f"{project!r}. Use a token for {project!r} or one without a project.",
                token_project=self.project,
                project=project,
            )


_caller: contextvars.ContextVar[Caller | LoopwiseError | None] = contextvars.ContextVar(
    "loopwise_caller", default=None
)

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class AuthMiddleware:
    """Authenticate the bearer token once per request, check the route's permission, and act as
    the token's owner.

    ``routes`` lists each route's path template, methods and permission (the
    ``x-loopwise-permission`` it declares in the OpenAPI spec); a path or method no route takes
    needs ``read``, so that a stranger learns nothing from 404s. A request refused here is answered before its body is
    read, with ``Connection: close`` so that the server does not read the rest either: an
    anonymous client cannot make the server buffer bodies, and a malformed body cannot turn a
    401 or 403 into a 400. The project a route touches is checked by the route itself.
    """

    _CACHED_PATHS = 4096

    def __init__(
        self, app: ASGIApp, routes: Iterable[tuple[str, Iterable[str], Permission]]
    ) -> None:
        self.app = app
        self._routes = [
            (compile_path(path)[0], {m.upper(): needed for m in methods})
            for path, methods, needed in routes
        ]
        self._needed: dict[tuple[str, str], Permission] = {}

    def _permission(self, scope: MutableMapping[str, Any]) -> Permission:
        method, path = scope["method"], scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root + "/"):
            path = path[len(root) :]  # mounted under a prefix: routes match what follows it
        needed = self._needed.get((method, path))
        if needed is not None:
            return needed
        needed = Permission.READ  # no such route (404, 405): nothing for a stranger
        for regex, methods in self._routes:
            if regex.match(path) and (method in methods or (method == "HEAD" and "GET" in methods)):
                needed = methods.get(method) or methods["GET"]
                break
        if len(self._needed) >= self._CACHED_PATHS:
            self._needed.clear()  # paths carry ids; a bounded memory of the recent ones
        self._needed[(method, path)] = needed
        return needed

    async def _identify(self, scope: MutableMapping[str, Any]) -> Caller | LoopwiseError:
        state = scope["app"].state
        store: Store = state.store
        header = ""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                header = value.decode("latin-1")
        if not header:
            if not state.auth:
                return Caller(Role.ADMIN, None, current_actor())
            return AuthenticationError(
                "This route needs a token: send 'Authorization: Bearer lw_…'. An admin creates "
                "one with `loopwise token create --role viewer|editor|admin`.",
            )
        # A token that is sent is checked even when authentication is off: wrong credentials
        # are an error, never silently ignored.
        scheme, _, secret = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            # Never quote the header: without the scheme word, what came is the secret itself.
            return AuthenticationError(
                "Expected an 'Authorization: Bearer lw_…' header, got one that does not start "
                "with the word 'Bearer' and a space. Send the token as 'Bearer <secret>'.",
            )
        try:
            token = await anyio.to_thread.run_sync(store.authenticate, secret.strip())
        except LoopwiseError as exc:
            return exc
        return Caller(token.role, token.project, Actor(f"token:{token.name}", token.id), token)

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        needed = self._permission(scope)
        identity = await self._identify(scope)
        if needed is not Permission.PUBLIC:
            refusal = identity if isinstance(identity, LoopwiseError) else None
            if isinstance(identity, Caller):
                try:
                    identity.check(needed)  # the role; the route checks the project
                except PermissionDeniedError as exc:
                    refusal = exc
            if refusal is not None:
                response = JSONResponse(
                    refusal.to_dict(),
                    status_code=HTTP_STATUS.get(refusal.code, 500),
                    headers={"Connection": "close"},
                )
                await response(scope, receive, send)
                return
        reset = _caller.set(identity)
        try:
            if isinstance(identity, Caller):
                with acting_as(identity.actor):
                    await self.app(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            _caller.reset(reset)


def caller() -> Caller:
    """FastAPI dependency: the authenticated caller, or 401."""
    identity = _caller.get()
    if isinstance(identity, Caller):
        return identity
    if identity is None:
        raise AuthenticationError("No credentials were checked for this request.")
    raise identity
