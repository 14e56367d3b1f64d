"""The autopilot inside ``loopwise server --autopilot-every SECONDS``: one background thread that
ticks, every so often, each deployment of each project that has an autopilot policy.

``run_once`` makes the served store and each project the SDK's current context while it
ticks (the monitors read through it); the server process has no other use for that context.
A tick that fails is logged and tried again next time; it never stops the
server. The app's lifespan starts the thread and stops it on shutdown.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from loopwise.autopilot.settings import OperatorSettings
from loopwise.errors import InvalidArgumentError
from loopwise.store import Store
from loopwise.store.actor import Actor, acting_as

__all__ = ["AUTOPILOT_ACTOR", "AutopilotLoop", "autopilot_lifespan", "check_period"]

log = logging.getLogger(__name__)

AUTOPILOT_ACTOR = Actor("autopilot")
"""Who the audit log names for the changes the server's autopilot makes."""


def check_period(every_s: object) -> float:
    """``every_s`` as a positive finite number of seconds, or an InvalidArgumentError."""
    if (
        isinstance(every_s, int | float)
        and not isinstance(every_s, bool)
        and math.isfinite(every_s)
        and every_s > 0
    ):
        return float(every_s)
    raise InvalidArgumentError(
        f"Expected the autopilot's period as a positive number of seconds, got {every_s!r}. "
        "Give e.g. --autopilot-every 300 (0, the default, leaves the autopilot off).",
        parameter="autopilot_every_s",
    )


class AutopilotLoop:
    """Ticks every deployment with a policy, in every project of ``store``, each ``every_s``
    seconds (see the module docstring). ``start`` and ``stop`` run and end the thread."""

    def __init__(
        self, store: Store, every_s: float, settings: OperatorSettings | None = None
    ) -> None:
        self.store = store
        self.every_s = every_s
        self.settings = settings
        """What the operator allows (None: ``OperatorSettings.from_env()`` at each round)."""
        self.rounds_ = 0
        """Rounds finished so far (each ticks every project once)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        check_period(self.every_s)
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="loopwise-autopilot", daemon=True)
        self._thread.start()
        log.info("autopilot: ticking every deployment with a policy every %g s", self.every_s)

    def stop(self, timeout_s: float = 60.0) -> None:
        """Ask the thread to stop after the tick in progress, and wait for it."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning("autopilot: a tick still runs after %g s; not waiting for it", timeout_s)

    def tick(self) -> None:
        """One round: every project's deployments with a policy, once (errors logged)."""
        from loopwise import autopilot

        try:
            projects = [p.name for p in self.store.list_projects()]
        except Exception:
            log.exception("autopilot: cannot list the projects; the next round tries again")
            return
        for project in projects:
            if self._stop.is_set():
                return
            try:
                with acting_as(AUTOPILOT_ACTOR):
                    autopilot.run_all(store=self.store, project=project, settings=self.settings)
            except Exception:
                log.exception("autopilot: the round of project %s failed", project)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self.rounds_ += 1
            self._stop.wait(self.every_s)


def autopilot_lifespan(
    every_s: float, settings: OperatorSettings | None = None
) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A FastAPI lifespan that runs an ``AutopilotLoop`` over ``app.state.store`` while the
    app serves, with the operator's ``settings``."""
    check_period(every_s)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        loop = AutopilotLoop(app.state.store, every_s, settings)
        loop.start()
        app.state.autopilot = loop
        try:
            yield
        finally:
            import anyio.to_thread

            await anyio.to_thread.run_sync(loop.stop)

    return lifespan
