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

The app is a plain ASGI callable, not a web framework: routing, body reading and JSON are done
here directly, which keeps the per-request cost a fraction of a framework's (see
``docs/benchmarks.md``). Each request is checked against its model's signature on its own (a
mismatch is a 422 naming the column), then joins its model's ``Batcher``; the batch runs in a
worker thread and each request gets its own rows back. A request that cannot be answered
within its deadline (the model's SLO, or ``X-Deadline-Ms``) gets 503 with ``Retry-After``.
Errors use the control plane's JSON envelope, except under ``/v2`` where the Open Inference
Protocol's ``{"error": "<message>"}`` carries the same code and details alongside.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import numpy as np

from loopwise.errors import (
    InvalidArgumentError,
    LoopwiseError,
    NotFoundError,
    PayloadTooLargeError,
    UnavailableError,
    not_found,
)
from loopwise.registry import LoadedModel
from loopwise.serving.batching import BatchPolicy
from loopwise.serving.cache import ResponseCache, input_digest
from loopwise.serving.deployments import ServedDeployment
from loopwise.serving.http import (
    JSON_HEADERS,
    Exchange,
    Receive,
    Response,
    Scope,
    Send,
    allowed_methods,
    dumps,
    error_response,
    header,
    model_path,
    request_deadline,
)
from loopwise.serving.models import ServedModels
from loopwise.serving.predictions import PredictionWriter
from loopwise.serving.protocols import (
    decode_infer_request,
    encode_binary_tensor,
    encode_tensor,
    load_json,
    oip_tensor_specs,
    parse_invocations,
    parse_records,
)
from loopwise.serving.queues import ModelQueue, QueueContext
from loopwise.serving.schema import NO_SIGNATURE_LIMIT, ColumnLimit, Inputs, rows_of
from loopwise.serving.shadow import ShadowTraffic
from loopwise.serving.workers import LogTarget
from loopwise.store import Deployment
from loopwise.store.predictions import PredictionSpool
from loopwise.version import loopwise_version

if TYPE_CHECKING:  # an app made without metrics never loads prometheus_client
    from loopwise.serving.metrics import ServingMetrics

__all__ = ["ServingApp", "create_serving_app"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
INLINE_PARSE_BYTES = 64 * 1024
"""Bodies up to this size are parsed and checked on the event loop (microseconds, no thread
hop); larger ones, and every CSV body (pandas), in a worker thread, so that one big request
never holds up the others."""
_PREDICT = frozenset({"predict"})
_BOTH = frozenset({"predict", "predict_proba"})


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
        self._served: dict[str, ModelQueue | ServedDeployment[ModelQueue]] = {}
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
        record = Exchange(scope)
        try:
            record.check()
            response = await self._route(scope, receive, path, record)
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

    async def _body(self, receive: Receive) -> bytes:
        chunks = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise PayloadTooLargeError(
                        f"The request body is over {self.max_body_bytes} bytes; send fewer rows "
                        "per request.",
                        limit=self.max_body_bytes,
                    )
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _route(self, scope: Scope, receive: Receive, path: str, record: Exchange) -> Response:
        method: str = scope["method"]
        if method == "POST":
            if path == "/invocations":
                served = self._only(scope)
                record.served(served.label, "invocations")
                body = await self._body(receive)
                content_type = header(scope, b"content-type", "application/json")
                limit = self._column_limit(served)
                csv = not content_type.startswith("application/json")  # pandas: a thread
                if csv or len(body) > INLINE_PARSE_BYTES:
                    record.off_loop = True
                    inputs = await asyncio.to_thread(parse_invocations, body, content_type, limit)
                else:
                    inputs = parse_invocations(body, content_type, limit)
                version, results = await self._infer(served, inputs, _PREDICT, record)
                record.version = version
                return Response(200, dumps({"predictions": results["predict"].tolist()}))
            if path == "/predict":
                served = self._only(scope)
                record.served(served.label, "predict")
                body = await self._body(receive)
                limit = self._column_limit(served)
                if len(body) > INLINE_PARSE_BYTES:
                    record.off_loop = True
                    inputs = await asyncio.to_thread(_parse_predict, body, limit)
                else:
                    inputs = _parse_predict(body, limit)
                version, results = await self._infer(served, inputs, _BOTH, record)
                record.version = version
                answer: dict[str, Any] = {
                    "model": served.name,
                    "version": version,
                    "predictions": results["predict"].tolist(),
                }
                if "predict_proba" in results:
                    answer["probabilities"] = results["predict_proba"].tolist()
                return Response(200, dumps(answer))
            if path.startswith("/v2/models/") and path.endswith("/infer"):
                name, pinned = model_path(path[len("/v2/models/") : -len("/infer")])
                served = self._named(name, pinned)
                record.served(served.label, "v2")
                return await self._oip_infer(served, scope, receive, record, pinned)
        elif method == "GET":
            found = self._get(path)
            if found is not None:
                return found
        allowed = allowed_methods(path)
        if allowed and method not in allowed:
            message = f"{method} is not allowed on {path}; use {' or '.join(sorted(allowed))}."
            error = {"code": "method_not_allowed", "message": message, "details": {}}
            raise Response(
                405,
                dumps({**error, "error": message} if path.startswith("/v2") else {"error": error}),
                [*JSON_HEADERS, (b"allow", ", ".join(sorted(allowed)).encode())],
            )
        raise NotFoundError(
            f"No route {path!r}. The server answers /v2 (Open Inference Protocol), "
            "/invocations, /predict, /ping and /metrics.",
            path=path,
        )

    # -- routes ------------------------------------------------------------------------------
    def _get(self, path: str) -> Response | None:
        if path in ("/v2/health/live", "/health"):
            return Response(200, b'{"live":true}')
        if path == "/ping":
            return Response(200, b"{}")
        if path == "/v2/health/ready":
            ready = self.models.ready() and all(
                s.ready for s in self._served.values() if isinstance(s, ServedDeployment)
            )
            return Response(200, dumps({"ready": ready}))
        if path == "/v2":
            return Response(
                200,
                dumps(
                    {
                        "name": "loopwise",
                        "version": loopwise_version(),
                        "extensions": ["binary_tensor_data"],
                    }
                ),
            )
        if path == "/metrics" and self.metrics is not None:
            payload, content_type = self.metrics.render()
            return Response(200, payload, [(b"content-type", content_type.encode())])
        if path.startswith("/v2/models/"):
            rest = path[len("/v2/models/") :]
            if rest.endswith("/ready"):
                name, version = model_path(rest[: -len("/ready")])
                served = self._named(name, version)
                if isinstance(served, ServedDeployment):
                    return Response(200, dumps({"name": name, "ready": served.ready}))
                state = self.models.state(name)
                return Response(200, dumps({"name": name, "ready": state.ready}))
            name, version = model_path(rest)
            served = self._named(name, version)
            return Response(200, dumps(self._metadata(served)))
        return None

    def _metadata(self, served: ModelQueue | ServedDeployment[ModelQueue]) -> dict[str, Any]:
        model: LoadedModel | None
        if isinstance(served, ServedDeployment):
            routing = served.routing
            versions = [str(v) for v in routing.live] if routing is not None else []
            lanes = list(routing.live.values()) if routing is not None else []
            model = self.models.current(lanes[0].key) if lanes else None
        else:
            model = self.models.current(served.key)
            state = self.models.state(served.key)
            versions = [str(state.version)] if state.version is not None else []
        signature = (model.signature if model is not None else None) or {}
        declared = oip_tensor_specs(signature.get("outputs"))
        predict_type = declared[0]["datatype"] if len(declared) == 1 else "BYTES"
        outputs = [{"name": "predict", "datatype": predict_type, "shape": [-1]}]
        if model is not None and hasattr(model, "predict_proba"):
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, -1]})
        return {
            "name": served.name,
            "versions": versions,
            "platform": f"loopwise_{model.version.flavour}" if model is not None else "loopwise",
            "inputs": oip_tensor_specs(signature.get("inputs")),
            "outputs": outputs,
        }

    def _named(
        self, name: str, version: str | None = None
    ) -> ModelQueue | ServedDeployment[ModelQueue]:
        served = self._served.get(name)
        if served is None:
            raise not_found("model", name, self._served)
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

    def _column_limit(self, served: ModelQueue | ServedDeployment[ModelQueue]) -> ColumnLimit:
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

    def _only(self, scope: Scope) -> ModelQueue | ServedDeployment[ModelQueue]:
        query = scope.get("query_string", b"")
        if query:
            names = parse_qs(query.decode("latin-1")).get("model")
            if names:
                return self._named(names[0])
        if len(self._served) != 1:
            raise InvalidArgumentError(
                f"Several models are served ({sorted(self._served)}): name one with ?model=NAME.",
                parameter="model",
            )
        return next(iter(self._served.values()))

    async def _infer(
        self,
        served: ModelQueue | ServedDeployment[ModelQueue],
        inputs: Inputs,
        wanted: frozenset[str],
        record: Exchange,
        pinned: str | None = None,
    ) -> tuple[int, dict[str, np.ndarray[Any, Any]]]:
        if isinstance(served, ServedDeployment):
            return await self._infer_deployment(served, inputs, wanted, record, pinned)
        if self.prediction_log is not None:
            record.request_id = record.request_id or uuid.uuid4().hex
        result = await self._answer(served, inputs, wanted, record)
        if self.prediction_log is not None and not record.logged:
            await self._log(served, inputs, result, record)
        return result

    async def _infer_deployment(
        self,
        served: ServedDeployment[ModelQueue],
        inputs: Inputs,
        wanted: frozenset[str],
        record: Exchange,
        pinned: str | None,
    ) -> tuple[int, dict[str, np.ndarray[Any, Any]]]:
        """Answer from the version the request's key is assigned; then copy it to the shadows."""
        request_id = record.request_id
        if request_id is None:  # the key of a request without X-Request-Key: random
            request_id = record.request_id = uuid.uuid4().hex
        routing = served.routing
        lane = served.route(header(record.scope, b"x-request-key", None), request_id, pinned)
        lane.active += 1
        try:
            result = await self._answer(lane, inputs, wanted, record)
            if self.prediction_log is not None and not record.logged:
                await self._log(lane, inputs, result, record)
        finally:
            lane.active -= 1
        if routing is not None and routing.shadow:  # after this response is on its way
            asyncio.get_running_loop().call_soon(
                self._shadow.send,
                routing.shadow,
                inputs,
                wanted,
                request_id,
                record.arrived_ms,
                record.off_loop,  # a large request: its copies are checked off the loop too
            )
        return result

    async def _log(
        self,
        served: ModelQueue,
        inputs: Inputs,
        result: tuple[int, dict[str, np.ndarray[Any, Any]]],
        record: Exchange,
    ) -> None:
        """Hand the request's rows to the log writer; return once they are durable (the
        response waits). Turning them into records happens in the writer's thread."""
        assert self._log_batch is not None and record.request_id is not None
        latency_ms = (time.perf_counter() - record.started) * 1000
        await self._log_batch.add(
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
    ) -> tuple[int, dict[str, np.ndarray[Any, Any]]]:
        scope = record.scope
        """Check the request against its model's signature, queue it, await its rows."""
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
            cached: tuple[int, dict[str, np.ndarray[Any, Any]]] = answer
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
    ) -> tuple[int, dict[str, np.ndarray[Any, Any]]]:
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

    async def _oip_infer(
        self,
        served: ModelQueue | ServedDeployment[ModelQueue],
        scope: Scope,
        receive: Receive,
        record: Exchange,
        pinned: str | None,
    ) -> Response:
        raw = await self._body(receive)
        args = (
            raw,
            header(scope, b"inference-header-content-length", None),
            _BOTH,
            self._column_limit(served),
        )
        if len(raw) > INLINE_PARSE_BYTES:
            record.off_loop = True
            request = await asyncio.to_thread(decode_infer_request, *args)
        else:
            request = decode_infer_request(*args)
        body, all_binary, binary_outputs = request.body, request.all_binary, request.binary_outputs
        version, results = await self._infer(served, request.inputs, request.wanted, record, pinned)
        record.version = version
        outputs, raw_parts = [], []
        for name, values in results.items():
            if all_binary or name in binary_outputs:
                spec, raw = encode_binary_tensor(name, values)
                outputs.append(spec)
                raw_parts.append(raw)
            else:
                outputs.append(encode_tensor(name, values))
        response: dict[str, Any] = {
            "model_name": served.name,
            "model_version": str(version),
            "outputs": outputs,
        }
        if "id" in body:
            response["id"] = body["id"]
        if not raw_parts:
            return Response(200, dumps(response))
        json_part = dumps(response)
        return Response(
            200,
            json_part + b"".join(raw_parts),
            [
                (b"content-type", b"application/octet-stream"),
                (b"inference-header-content-length", str(len(json_part)).encode()),
            ],
        )


def _parse_predict(body: bytes, limit: ColumnLimit) -> Inputs:
    return parse_records(load_json(body), limit)


create_serving_app = ServingApp
"""``create_serving_app(models, **options)``: the app factory (``ServingApp`` itself)."""
