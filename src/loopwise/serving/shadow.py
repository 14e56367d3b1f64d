"""Shadow traffic: a copy of each answered request for a deployment's shadow versions.

After the live answer is on its way, ``ShadowTraffic.send`` queues a copy of the request in
each shadow version's own queue; the answers are logged to the prediction log with the live
request's id and ``shadow=True``, and never returned. A copy that cannot be queued (its queue
is full, its deadline cannot be met, its model refuses the rows) is dropped and counted in
``loopwise_shadow_requests_total``: shadow versions never slow or fail live traffic. A copy of
a request that was parsed off the event loop (``Exchange.off_loop``: a large body, or CSV) is
checked against its shadow version's signature off the loop too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from loopwise.errors import UnavailableError
from loopwise.registry import LoadedModel
from loopwise.serving.models import ServedModels
from loopwise.serving.predictions import PredictionWriter
from loopwise.serving.queues import ModelQueue
from loopwise.serving.schema import Inputs, InputSchema, rows_of

if TYPE_CHECKING:  # an app made without metrics never loads prometheus_client
    from loopwise.serving.metrics import ServingMetrics

__all__ = ["ShadowTraffic"]

log = logging.getLogger(__name__)


class ShadowTraffic:
    """Copies of answered requests to shadow versions, logged and counted (see the module)."""

    def __init__(
        self,
        models: ServedModels,
        metrics: ServingMetrics | None,
        writer: PredictionWriter | None,
    ) -> None:
        self.models = models
        self.metrics = metrics
        self.writer = writer
        self.pending: set[asyncio.Future[None]] = set()

    def send(
        self,
        lanes: tuple[ModelQueue, ...],
        inputs: Inputs,
        wanted: frozenset[str],
        request_id: str,
        arrived_ms: int,
        off_loop: bool = False,
    ) -> None:
        """Queue a copy of an answered request for each shadow lane (on the event loop).

        ``off_loop``: the request was parsed and checked in a thread (see ``INLINE_PARSE_BYTES``
        in ``app.py``); each copy's check then runs in a thread too, before it is queued.
        """
        for lane in lanes:
            started = time.perf_counter()
            try:
                model = self.models.current(lane.key)
                if model is None:  # evicted under the memory budget: not reloaded for a copy
                    raise UnavailableError("The shadow version is not loaded.", reason="not_loaded")
                schema = lane.schema_for(model)
                if off_loop:
                    copy = self._answer_large(
                        lane, model, schema, inputs, wanted, request_id, arrived_ms, started
                    )
                else:
                    checked = schema.check(inputs)
                    future = self._queue(
                        lane, model, checked, wanted, request_id, arrived_ms, started
                    )
                    copy = self._answer(lane, future, inputs, request_id, arrived_ms, started)
            except Exception as exc:
                self._done(lane, exc)
                continue
            lane.active += 1
            task = asyncio.ensure_future(copy)
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    @staticmethod
    def _queue(
        lane: ModelQueue,
        model: LoadedModel,
        checked: Inputs,
        wanted: frozenset[str],
        request_id: str,
        arrived_ms: int,
        started: float,
    ) -> asyncio.Future[Any]:
        """Join the copy's checked rows to its lane's batcher (no deadline)."""
        payload: tuple[Any, ...] = (model.version.version, checked, wanted)
        if lane.worker is not None and lane.worker.log is not None:
            payload = (*payload, (request_id, arrived_ms, started))
        return lane.batcher.submit(payload, rows_of(checked), None)

    async def _answer_large(
        self,
        lane: ModelQueue,
        model: LoadedModel,
        schema: InputSchema,
        inputs: Inputs,
        wanted: frozenset[str],
        request_id: str,
        arrived_ms: int,
        started: float,
    ) -> None:
        """Check a large copy in a thread, queue it, then await and log it as ``_answer``."""
        try:
            checked = await asyncio.to_thread(schema.check, inputs)
            future = self._queue(lane, model, checked, wanted, request_id, arrived_ms, started)
        except BaseException as exc:
            lane.active -= 1
            if not isinstance(exc, Exception):
                raise  # cancelled: the server is closing
            self._done(lane, exc)
            return
        await self._answer(lane, future, inputs, request_id, arrived_ms, started)

    async def _answer(
        self,
        lane: ModelQueue,
        future: asyncio.Future[Any],
        inputs: Inputs,
        request_id: str,
        arrived_ms: int,
        started: float,
    ) -> None:
        """Await a copy's answer and log it (``shadow=True``); never raises."""
        try:
            answer = await future
            if len(answer) == 3:  # its model process logged the rows
                await answer[2].durable()
            elif self.writer is not None:
                latency_ms = (time.perf_counter() - started) * 1000
                await self.writer.add(
                    (
                        lane.name,
                        lane.label,
                        request_id,
                        answer,
                        inputs,
                        arrived_ms,
                        latency_ms,
                        True,
                    )
                )
        except Exception as exc:
            self._done(lane, exc)
        else:
            self._done(lane, None)
        finally:
            lane.active -= 1

    def _done(self, lane: ModelQueue, error: BaseException | None) -> None:
        if error is not None:
            log.debug("Shadow copy for %s version %s dropped: %s", lane.name, lane.version, error)
        if self.metrics is None:
            return
        if error is None:
            result = "logged"
        elif isinstance(error, UnavailableError):
            result = str(error.details.get("reason") or "unavailable")
        else:
            result = "failed"
        self.metrics.shadow(lane.name, lane.version, result)

    def close(self) -> None:
        for task in self.pending:
            task.cancel()
