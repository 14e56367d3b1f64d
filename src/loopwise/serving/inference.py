"""Answering a request's inputs from a served model, whatever protocol brought them.

``Inference`` finds a served model or deployment by name, checks the inputs against the
model's signature, answers from the response cache or queues them on the model's batcher,
spools the answered rows to the prediction log, and copies a deployment's requests to its
shadow versions. The protocol handlers (``handlers/``) parse requests and encode answers
around it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import numpy as np

from loopwise.errors import InvalidArgumentError, UnavailableError, not_found
from loopwise.registry import LoadedModel
from loopwise.serving.cache import input_digest
from loopwise.serving.deployments import ServedDeployment
from loopwise.serving.http import Exchange, Scope, header, request_deadline
from loopwise.serving.models import ServedModels
from loopwise.serving.predictions import PredictionWriter
from loopwise.serving.queues import ModelQueue
from loopwise.serving.schema import NO_SIGNATURE_LIMIT, ColumnLimit, Inputs, rows_of
from loopwise.serving.shadow import ShadowTraffic

if TYPE_CHECKING:  # an app made without metrics never loads prometheus_client
    from loopwise.serving.metrics import ServingMetrics

__all__ = ["ALL_OUTPUTS", "LOGGED_OUTPUTS", "Answer", "Inference", "Served"]

Served = ModelQueue | ServedDeployment[ModelQueue]
"""What a name is served by: one model's queue, or a deployment's versions."""
Answer = tuple[int, dict[str, np.ndarray[Any, Any]]]
"""The version that answered and each wanted output's rows."""
ALL_OUTPUTS = frozenset({"predict", "predict_proba"})
LOGGED_OUTPUTS = ALL_OUTPUTS
"""What a logged request computes, whatever it asked for: a classifier's scores cost little
more in the same batch, and monitoring needs them in every row (score-based metrics and
estimated performance); the client gets only the outputs it asked for."""


class Inference:
    """The served models and deployments by name (see the module docstring).

    ``log_batch``: the prediction log's writer (None: no log); ``shadow``: where a deployment's
    requests are copied after the answer."""

    def __init__(
        self,
        models: ServedModels,
        served: dict[str, Served],
        metrics: ServingMetrics | None,
        log_batch: PredictionWriter | None,
        shadow: ShadowTraffic,
    ) -> None:
        self.models = models
        self.served = served
        self.metrics = metrics
        self.log_batch = log_batch
        self.shadow = shadow

    def ready(self) -> bool:
        """Every model loaded and every deployment's plan in force."""
        return self.models.ready() and all(
            s.ready for s in self.served.values() if isinstance(s, ServedDeployment)
        )

    def named(self, name: str, version: str | None = None) -> Served:
        """The model or deployment served as ``name`` (a 404 if none), with ``version`` pinned
        when the request names one (a 404 unless that version is served)."""
        served = self.served.get(name)
        if served is None:
            raise not_found("model", name, self.served)
        if isinstance(served, ServedDeployment):
            if version is not None:
                if served.routing is None:
                    raise not_found(f"live version of deployment {name!r}", version, [])
                served.routing.pinned(version)
            return served
        if version is not None:
            current = self.models.state(name).version
            if version != str(current):
                raise not_found(f"served version of model {name!r}", version, [str(current)])
        return served

    def only(self, scope: Scope) -> Served:
        """The model a request names with ``?model=NAME``, or the only one served."""
        query = scope.get("query_string", b"")
        if query:
            names = parse_qs(query.decode("latin-1")).get("model")
            if names:
                return self.named(names[0])
        if len(self.served) != 1:
            raise InvalidArgumentError(
                f"Several models are served ({sorted(self.served)}): name one with ?model=NAME.",
                parameter="model",
            )
        return next(iter(self.served.values()))

    def column_limit(self, served: Served) -> ColumnLimit:
        """The most columns a request to ``served`` may send, from its model's signature (the
        widest of a deployment's live versions); generous while a model is not loaded."""
        if isinstance(served, ModelQueue):
            model = self.models.current(served.key)
            return served.schema_for(model).limit if model is not None else NO_SIGNATURE_LIMIT
        routing = served.routing
        limit = None
        for lane in routing.live.values() if routing is not None else ():
            model = self.models.current(lane.key)
            if model is None:
                return NO_SIGNATURE_LIMIT
            lane_limit = lane.schema_for(model).limit
            if limit is None or lane_limit.most > limit.most:
                limit = lane_limit
        return limit or NO_SIGNATURE_LIMIT

    async def infer(
        self,
        served: Served,
        inputs: Inputs,
        wanted: frozenset[str],
        record: Exchange,
        pinned: str | None = None,
    ) -> Answer:
        """The ``wanted`` outputs for ``inputs``, once answered (and logged, with a log: the
        log gets ``LOGGED_OUTPUTS`` too, whatever the request asked for)."""
        computed = wanted if self.log_batch is None else wanted | LOGGED_OUTPUTS
        if isinstance(served, ServedDeployment):
            result = await self._infer_deployment(served, inputs, computed, record, pinned)
            return _only(result, wanted)
        if self.log_batch is not None:
            record.request_id = record.request_id or uuid.uuid4().hex
        result = await self._answer(served, inputs, computed, record)
        if self.log_batch is not None and not record.logged:
            await self._log(served, inputs, result, record)
        return _only(result, wanted)

    async def _infer_deployment(
        self,
        served: ServedDeployment[ModelQueue],
        inputs: Inputs,
        wanted: frozenset[str],
        record: Exchange,
        pinned: str | None,
    ) -> Answer:
        """Answer from the version the request's key is assigned; then copy it to the shadows."""
        request_id = record.request_id
        if request_id is None:  # the key of a request without X-Request-Key: random
            request_id = record.request_id = uuid.uuid4().hex
        routing = served.routing
        lane = served.route(header(record.scope, b"x-request-key", None), request_id, pinned)
        lane.active += 1
        try:
            result = await self._answer(lane, inputs, wanted, record)
            if self.log_batch is not None and not record.logged:
                await self._log(lane, inputs, result, record)
        finally:
            lane.active -= 1
        if routing is not None and routing.shadow:  # after this response is on its way
            asyncio.get_running_loop().call_soon(
                self.shadow.send,
                routing.shadow,
                inputs,
                wanted,
                request_id,
                record.arrived_ms,
                record.off_loop,  # a large request: its copies are checked off the loop too
            )
        return result

    async def _log(
        self, served: ModelQueue, inputs: Inputs, result: Answer, record: Exchange
    ) -> None:
        """Hand the request's rows to the log writer; return once they are durable (the
        response waits). Turning them into records happens in the writer's thread."""
        assert self.log_batch is not None and record.request_id is not None
        latency_ms = (time.perf_counter() - record.started) * 1000
        await self.log_batch.add(
            (
                served.name,
                served.label,
                record.request_id,
                result,
                inputs,
                record.arrived_ms,
                latency_ms,
                served.shadow,
            )
        )

    async def _answer(
        self, served: ModelQueue, inputs: Inputs, wanted: frozenset[str], record: Exchange
    ) -> Answer:
        """Check the request against its model's signature, queue it, await its rows."""
        scope = record.scope
        model = self.models.current(served.key)
        if model is None:  # evicted or still loading: load it off the event loop
            model = await asyncio.to_thread(self.models.get, served.key)
        schema = served.schema_for(model)
        if record.off_loop:  # a large request: its check may take a while
            checked = await asyncio.to_thread(schema.check, inputs)
        else:
            checked = schema.check(inputs)
        deadline = request_deadline(scope)
        cache = served.cache
        if cache is None:
            return await self._submit(served, model, checked, wanted, deadline, record)
        key = (model.version.version, wanted, input_digest(checked))
        answer = cache.get(key)
        if answer is None:
            running = cache.inflight(key)
            if running is not None:  # the same request is computing: share its answer
                answer = await asyncio.shield(running)
        if answer is not None:
            if self.metrics is not None:
                self.metrics.cache(served.label, True)
            cached: Answer = answer
            return cached
        if self.metrics is not None:
            self.metrics.cache(served.label, False)
        future = cache.start(key)
        try:
            result = await self._submit(served, model, checked, wanted, deadline, record)
        except BaseException as exc:
            cache.finish(key, future, None, exc)
            raise
        # Kept under the version that answered (a swap may have happened while it queued).
        cache.finish(key, future, result, None, store_as=(result[0], wanted, key[2]))
        return result

    async def _submit(
        self,
        served: ModelQueue,
        model: LoadedModel,
        checked: Inputs,
        wanted: frozenset[str],
        deadline: float | None,
        record: Exchange,
    ) -> Answer:
        worker = served.worker
        logs = worker is not None and worker.log is not None
        payload: tuple[Any, ...] = (model.version.version, checked, wanted)
        if logs:  # the model process logs these rows before it answers
            payload = (*payload, (record.request_id, record.arrived_ms, record.started))
        future = served.batcher.submit(payload, rows_of(checked), deadline)
        try:
            answer = await future
        except UnavailableError as exc:
            if self.metrics is not None:
                self.metrics.rejected(served.label, str(exc.details.get("reason", "")))
            raise
        if len(answer) == 3:  # the model process logged the rows: answer once they are durable
            await answer[2].durable()
            record.logged = True
        return answer[0], answer[1]


def _only(answer: Answer, wanted: frozenset[str]) -> Answer:
    """The outputs a request asked for, of those computed for the log."""
    version, outputs = answer
    if outputs.keys() <= wanted:
        return answer
    return version, {name: rows for name, rows in outputs.items() if name in wanted}
