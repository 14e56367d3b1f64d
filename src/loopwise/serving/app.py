"""The inference server: a lean ASGI app in front of each served model's batcher.

``create_serving_app(models)`` serves each model under its name:

* Open Inference Protocol (KServe V2) REST: ``/v2/health/live|ready``, ``/v2``,
  ``/v2/models/{name}[/versions/{v}]``, ``…/ready`` and ``POST …/infer`` (JSON tensors and
  the binary tensor extension);
* MLflow's scoring protocol: ``POST /invocations`` (one model served, or ``?model=name``) and
  ``GET /ping``;
* ``POST /predict``: a list of records (``?model=name`` when several are served);
* ``GET /metrics``: Prometheus metrics, when the app was given a ``ServingMetrics``.

A deployment (``ServedModels(refs, deployments=[...])``) is served under its own name the same
way; each request goes to the version its key is assigned (``deployments.py``), and copies go
to the plan's shadow versions after the answer.

The app is a plain ASGI callable, not a web framework: a route table (``routing.py``; static
paths are one dict lookup) hands each request to its protocol's handler (``handlers/``), which
parses it (``protocols/``) and asks ``Inference`` (``inference.py``) for the answer; this keeps
the per-request cost a fraction of a framework's (see ``docs/benchmarks.md``). Each request is
checked against its model's signature on its own (a mismatch is a 422 naming the column), then
joins its model's ``Batcher``; the batch runs in a worker thread and each request gets its own
rows back. A request that cannot be answered
within its deadline (the model's SLO, or ``X-Deadline-Ms``) gets 503 with ``Retry-After``.
Errors use the control plane's JSON envelope, except under ``/v2`` where the Open Inference
Protocol's ``{"error": "<message>"}`` carries the same code and details alongside.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from loopwise.errors import InvalidArgumentError, LoopwiseError, not_found
from loopwise.registry import LoadedModel
from loopwise.serving.batching import BatchPolicy
from loopwise.serving.cache import ResponseCache
from loopwise.serving.deployments import ServedDeployment
from loopwise.serving.handlers.health import Health
from loopwise.serving.handlers.mlflow import MlflowScoring
from loopwise.serving.handlers.oip import OpenInference, model_path
from loopwise.serving.handlers.records import RecordsPredict
from loopwise.serving.http import Exchange, Receive, Response, Scope, Send, error_response
from loopwise.serving.inference import Inference, Served
from loopwise.serving.models import ServedModels
from loopwise.serving.predictions import PredictionWriter
from loopwise.serving.queues import ModelQueue, QueueContext
from loopwise.serving.routing import Route, Router
from loopwise.serving.shadow import ShadowTraffic
from loopwise.serving.workers import LogTarget
from loopwise.store import Deployment
from loopwise.store.predictions import PredictionSpool

if TYPE_CHECKING:  # an app made without metrics never loads prometheus_client
    from loopwise.serving.metrics import ServingMetrics

__all__ = ["ServingApp", "create_serving_app"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
GET, POST = ("GET",), ("POST",)


class ServingApp:
    """The ASGI app (see the module docstring).

    ``policies``: batching and deadlines, one for all models or by name; ``processes``: each
    model computes in its own process; ``cache_bytes``: a response cache of that many bytes
    for each model named (off for the others); ``metrics``: served at ``/metrics``;
    ``prediction_log``: every answered row is spooled there (and durable) before the response.
    The deployments of a ``ServedModels`` (``deployments=[...]``) are served beside its models;
    ``policies`` and ``cache_bytes`` take their names too.
    """

    def __init__(
        self,
        models: ServedModels | Mapping[str, LoadedModel],
        *,
        policies: Mapping[str, BatchPolicy] | BatchPolicy | None = None,
        metrics: ServingMetrics | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        processes: bool = False,
        model_threads: int = 1,
        cache_bytes: Mapping[str, int] | None = None,
        prediction_log: PredictionSpool | None = None,
        project: str = "",
    ) -> None:
        self.prediction_log = prediction_log
        self._log_batch = (
            PredictionWriter(prediction_log, project) if prediction_log is not None else None
        )
        self.project = project
        if prediction_log is not None and not project:
            raise InvalidArgumentError(
                "A prediction log needs the project its predictions belong to.",
                parameter="project",
            )
        self.processes = processes
        self.model_threads = model_threads
        self.models = models if isinstance(models, ServedModels) else ServedModels.fixed(models)
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self._policies = policies
        self._caches: dict[str, ResponseCache] = {
            name: ResponseCache(size) for name, size in (cache_bytes or {}).items() if size
        }
        self._context = QueueContext(
            self.models, metrics, processes, model_threads, prediction_log, project
        )
        self._served: dict[str, Served] = {}
        for name in self.models.names:
            self._served[name] = ModelQueue(
                name, self._context, self._policy(name), self._caches.get(name)
            )
        for name in self.models.deployments:
            self._served[name] = ServedDeployment(name, self.models, self._lane)
        self._shadow = ShadowTraffic(self.models, metrics, self._log_batch)
        unknown = set(cache_bytes or {}) - set(self._served)
        if unknown:
            raise not_found("served model", sorted(unknown)[0], self._served)
        inference = Inference(self.models, self._served, metrics, self._log_batch, self._shadow)
        self._router = Router(self._routes(inference))

    def _routes(self, inference: Inference) -> list[Route[Any]]:
        """The route table: static paths first (one dict lookup), then ``/v2/models/…``."""
        mlflow, records = MlflowScoring(inference), RecordsPredict(inference)
        v2, health = OpenInference(inference), Health(inference, self.metrics)
        return [
            Route("/invocations", POST, mlflow.invocations),
            Route("/predict", POST, records.predict),
            Route("/ping", GET, health.ping),
            Route("/health", GET, health.live),
            Route("/metrics", GET, health.metrics_text),
            Route("/v2", GET, v2.server_metadata),
            Route("/v2/health/live", GET, health.live),
            Route("/v2/health/ready", GET, health.ready),
            Route("/v2/models/{model}/infer", POST, v2.infer, model_path),
            Route("/v2/models/{model}/ready", GET, v2.model_ready, model_path),
            Route("/v2/models/{model}", GET, v2.model_metadata, model_path),
        ]

    # -- ASGI --------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _policy(self, name: str) -> BatchPolicy:
        policies = self._policies
        policy = policies.get(name) if isinstance(policies, Mapping) else policies
        return policy or BatchPolicy()

    def _lane(self, deployment: Deployment, version: int, shadow: bool) -> ModelQueue:
        """The queue of one version of a deployment, live or shadow (``ServedDeployment``)."""
        return ModelQueue(
            deployment.name,
            self._context,
            self._policy(deployment.name),
            None if shadow else self._caches.get(deployment.name),
            key=self.models.version_key(deployment.name, deployment.model, version),
            label=deployment.model,
            version=version,
            shadow=shadow,
        )

    def log_target(self, name: str, shadow: bool = False) -> LogTarget | None:
        """Where model ``name``'s process logs its rows (``QueueContext.log_target``)."""
        return self._context.log_target(name, shadow)

    async def start(self) -> None:
        """Load and warm every model (and start its process, with ``processes=True``), and put
        each deployment's plan in force; a deployment that does not exist raises."""
        await asyncio.to_thread(self.models.start)
        deployments = []
        for served in self._served.values():
            if isinstance(served, ServedDeployment):
                deployments.append(served.start())  # its plan's versions, warm, in their lanes
            elif served.worker is not None:
                await served.worker.prepare(self.models.get(served.key))
        for outcome in await asyncio.gather(*deployments, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
        # Everything loaded so far (libraries, models) lives as long as the server: moved out
        # of the collector's sight, a full collection no longer walks it (no 100 ms pauses).
        gc.collect()
        gc.freeze()

    def close(self) -> None:
        for served in self._served.values():
            served.close()
        self._shadow.close()
        self.models.close()
        if self._log_batch is not None:
            self._log_batch.close()
        if self.prediction_log is not None:
            self.prediction_log.close()  # drains what is spooled into the store

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        oip = path.startswith("/v2")
        record = Exchange(scope, receive, self.max_body_bytes)
        try:
            record.check()
            response = await self._route(record)
        except Response as done:
            response = done
        except LoopwiseError as exc:
            response = error_response(exc, oip)
        except Exception:  # a bug: log it, answer 500 in the usual shape
            log.exception("Unhandled error serving %s %s", scope["method"], path)
            response = error_response(LoopwiseError("Internal error; see the server log."), oip)
        headers = response.headers
        request_id, version = record.request_id, record.version
        if version is not None:  # the version that answered (a deployment's is assigned)
            answered = (b"x-model-version", str(version).encode())
            if request_id is not None:
                headers = [*headers, (b"x-request-id", request_id.encode()), answered]
            else:
                headers = [*headers, answered]
        elif request_id is not None:
            headers = [*headers, (b"x-request-id", request_id.encode())]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})
        if self.metrics is not None and record.model is not None:
            self.metrics.request(
                record.model,
                str(record.version),
                record.protocol,
                response.status,
                time.perf_counter() - record.started,
            )

    async def _route(self, record: Exchange) -> Response:
        scope = record.scope
        route, param = self._router.match(scope["method"], scope["path"])
        response: Response = await route.handler(record, param)
        return response


create_serving_app = ServingApp
"""``create_serving_app(models, **options)``: the app factory (``ServingApp`` itself)."""
