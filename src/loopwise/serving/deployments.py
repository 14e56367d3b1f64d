"""A deployment served by the inference server: the plan in force, followed from the store.

``ServedDeployment`` reads its deployment through the ``Store`` interface (embedded or remote)
at start and every poll interval. When the revision changes it loads and warms every version of
the new plan, shares and shadow (``ServedModels.add_version``, in the loader's threads), starts
each version's own queue and model process (a *lane*), and only then puts the new plan in force
with one assignment: a request routed before it finishes on the lane it was given, the next
ones use the new plan, and none fails. Lanes the new plan no longer has are stopped once the
requests they took have finished, and versions it no longer names are released.

Each request is assigned with ``loopwise.deployments.assign`` on its key (``X-Request-Key``,
else its request id), so a client that sends the same key stays on one version while a plan
stands, exactly as ``assign`` says.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from loopwise.deployments.assign import assign
from loopwise.errors import (
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
    not_found,
)
from loopwise.registry import LoadedModel
from loopwise.serving.models import ServedModels
from loopwise.store import Deployment

__all__ = ["MAX_REQUEST_KEY_CHARS", "Lane", "Routing", "ServedDeployment"]

log = logging.getLogger(__name__)

MAX_REQUEST_KEY_CHARS = 256
RETIRE_TIMEOUT_S = 120.0
"""Longest a lane that left the plan waits for its requests before it is stopped anyway."""


class Lane(Protocol):
    """One version of a deployment in one role (live or shadow): its queue and process."""

    key: str
    version: int
    active: int
    """Requests (and shadow copies) routed to it and not finished yet."""

    async def prepare(self, model: LoadedModel) -> None: ...

    async def stop(self) -> None: ...

    def close(self) -> None: ...


L = TypeVar("L", bound=Lane)


@dataclass(frozen=True)
class Routing(Generic[L]):
    """A plan in force: the deployment as read, a lane per live version and per shadow version."""

    deployment: Deployment
    live: Mapping[int, L]
    shadow: tuple[L, ...]

    def lanes(self) -> list[L]:
        return [*self.live.values(), *self.shadow]

    def pinned(self, version: str) -> L:
        """The live lane of ``version`` (from a ``/versions/V`` path), or NotFoundError."""
        lane = self.live.get(int(version)) if version.isdecimal() else None
        if lane is None:
            raise not_found(
                f"live version of deployment {self.deployment.name!r}",
                version,
                [str(v) for v in self.live],
            )
        return lane


class ServedDeployment(Generic[L]):
    """One deployment the server follows (see the module docstring).

    ``make_lane(deployment, version, shadow)`` builds a lane (the app's queue for that
    version); ``models`` loads the versions. ``label`` is the deployment's model once started,
    for metrics.
    """

    def __init__(
        self,
        name: str,
        models: ServedModels,
        make_lane: Callable[[Deployment, int, bool], L],
    ) -> None:
        self.name = name
        self.label = name
        self.models = models
        self.make_lane = make_lane
        self.routing: Routing[L] | None = None
        self._task: asyncio.Task[None] | None = None
        self._retiring: dict[asyncio.Task[None], list[L]] = {}
        self._pending: set[tuple[str, int]] = set()  # (model, version) a switch is loading
        self._problem: str | None = None  # the last warning logged, so that it is not repeated

    @property
    def ready(self) -> bool:
        return self.routing is not None

    # -- the request path ----------------------------------------------------------------------
    def route(self, request_key: str | None, request_id: str, pinned: str | None) -> L:
        """The lane that answers a request: the version ``assign`` gives its key (the
        ``X-Request-Key`` header, else the request id), or the version its path names."""
        routing = self.routing
        if routing is None:
            raise UnavailableError(
                f"Deployment {self.name!r} is still loading its plan; try again shortly.",
                retry_after_s=1.0,
                reason="not_ready",
                model=self.name,
            )
        if pinned is not None:
            return routing.pinned(pinned)
        if request_key is None:
            request_key = request_id
        elif not 0 < len(request_key) <= MAX_REQUEST_KEY_CHARS:
            raise InvalidArgumentError(
                f"X-Request-Key has {len(request_key)} characters; expected 1 to "
                f"{MAX_REQUEST_KEY_CHARS}. Send a user or session id, or no header (each "
                "request is then assigned by its request id).",
                field="X-Request-Key",
            )
        return routing.live[assign(routing.deployment, request_key)]

    # -- following the store ---------------------------------------------------------------------
    async def start(self) -> None:
        """Read the deployment and put its plan in force (every version loaded and warm), then
        follow it. A deployment that does not exist is a NotFoundError that says so."""
        deployment = await asyncio.to_thread(self._read)
        self.label = deployment.model
        await self._switch(deployment)
        self._task = asyncio.ensure_future(self._follow())

    def _read(self) -> Deployment:
        store = self.models.store
        if store is None:
            raise InvalidArgumentError(
                f"Serving deployment {self.name!r} needs models read from a store: pass "
                "ServedModels(refs, deployments=[...], store=..., project=...).",
                parameter="deployments",
            )
        return store.get_deployment(self.models.project, self.name)

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.models.poll_interval_s)
            try:
                deployment = await asyncio.to_thread(self._read)
            except NotFoundError as exc:
                self._warn(f"it is no longer in the store ({exc.message})")
                continue
            except Exception as exc:  # e.g. a remote store that does not answer
                self._warn(f"it could not be read ({type(exc).__name__}: {exc})")
                continue
            routing = self.routing
            assert routing is not None
            current = routing.deployment
            if (deployment.revision, deployment.created_ms) == (
                current.revision,
                current.created_ms,
            ):
                self._problem = None
                continue
            try:
                await self._switch(deployment)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._warn(
                    f"revision {deployment.revision} could not be loaded ({type(exc).__name__}: "
                    f"{exc}); it is tried again"
                )

    def _warn(self, problem: str) -> None:
        if problem == self._problem:
            return
        self._problem = problem
        routing = self.routing
        revision = routing.deployment.revision if routing is not None else None
        log.warning("Deployment %r: %s. Revision %s keeps serving.", self.name, problem, revision)

    async def _switch(self, deployment: Deployment) -> None:
        """Load and warm every version of ``deployment``'s plan, start their lanes, then put the
        plan in force; retire what it no longer needs."""
        model, plan = deployment.model, deployment.plan
        wanted = {(model, v) for v in plan.versions}
        self._pending |= wanted
        fresh: list[L] = []
        try:
            futures = [self.models.add_version(self.name, model, v) for v in plan.versions]
            loaded = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
            by_version = dict(zip(plan.versions, loaded, strict=True))
            old = self.routing
            reusable: dict[tuple[int, bool], L] = {}
            if old is not None and old.deployment.model == model:
                reusable.update({(v, False): lane for v, lane in old.live.items()})
                reusable.update({(lane.version, True): lane for lane in old.shadow})

            def lane_for(version: int, shadow: bool) -> L:
                lane = reusable.get((version, shadow))
                if lane is None:
                    lane = self.make_lane(deployment, version, shadow)
                    fresh.append(lane)
                return lane

            live = {v: lane_for(v, False) for v in plan.shares}
            shadow = tuple([lane_for(v, True) for v in plan.shadow])
            # Each new lane's process starts and takes its model, all at once.
            prepared = await asyncio.gather(
                *(lane.prepare(by_version[lane.version]) for lane in fresh),
                return_exceptions=True,  # every one finished before any is closed
            )
            for outcome in prepared:
                if isinstance(outcome, BaseException):
                    raise outcome
        except BaseException:
            for lane in fresh:
                lane.close()
            raise
        finally:
            self._pending -= wanted
        routing = Routing(deployment, live, shadow)
        self.routing = routing  # the switch: the next request is assigned under the new plan
        if old is not None and old.deployment.revision != deployment.revision:
            log.info(
                "Deployment %s: revision %s -> %s (%s)",
                self.name,
                old.deployment.revision,
                deployment.revision,
                plan.spec + (f", shadow {plan.shadow}" if plan.shadow else ""),
            )
        self._problem = None
        if old is not None:
            kept = {id(lane) for lane in routing.lanes()}
            gone = [lane for lane in old.lanes() if id(lane) not in kept]
            released = {(old.deployment.model, v) for v in old.deployment.plan.versions} - wanted
            if gone or released:
                task = asyncio.ensure_future(self._retire(gone, released))
                self._retiring[task] = gone
                task.add_done_callback(self._retiring.pop)

    async def _retire(self, lanes: list[L], versions: set[tuple[str, int]]) -> None:
        """Stop lanes once the requests they took have finished; release versions no plan
        (in force or being loaded) names any more."""
        waited = 0.0
        while any(lane.active for lane in lanes) and waited < RETIRE_TIMEOUT_S:
            await asyncio.sleep(0.05)
            waited += 0.05
        for lane in lanes:
            try:
                await lane.stop()
            except Exception:
                log.exception("Stopping deployment %s version %s failed", self.name, lane.version)
        routing = self.routing
        in_force = set()
        if routing is not None:
            in_force = {(routing.deployment.model, v) for v in routing.deployment.plan.versions}
        for model, version in versions - in_force - self._pending:
            self.models.release(self.name, model, version)

    def close(self) -> None:
        """Stop following; stop every lane (at shutdown, when no request is left)."""
        if self._task is not None:
            self._task.cancel()
        lanes = [lane for retiring in self._retiring.values() for lane in retiring]
        for task in list(self._retiring):
            task.cancel()
        routing, self.routing = self.routing, None
        if routing is not None:
            lanes += routing.lanes()
        for lane in lanes:
            lane.close()
