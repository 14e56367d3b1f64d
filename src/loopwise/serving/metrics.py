"""Prometheus metrics of the inference server: requests, latency, batches, queue, cache, models,
shadow traffic.

``ServingMetrics`` owns its own registry, so several apps in one process never clash, and caches
the labelled children it has seen: the calls on the request path cost a dictionary look-up and
the client's own increments. The metric table is in docs/metrics.md.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = [
    "BATCH_ROWS_BUCKETS",
    "DURATION_BUCKETS_S",
    "ServingMetrics",
]

DURATION_BUCKETS_S: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Latency buckets from 0.5 ms (a cached answer) to 10 s (a request that waited out its queue)."""

BATCH_ROWS_BUCKETS: tuple[float, ...] = tuple(float(2**i) for i in range(11))
"""Rows per batch: 1, 2, 4, …, 1024."""


class ServingMetrics:
    """The inference server's metrics, on a registry of their own.

    Label values are taken as given: callers pass the names of models they serve (not whatever
    a client put in a URL), so that the number of series stays bounded.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._requests = Counter(
            "loopwise_requests",
            "Requests answered, by model, version, protocol and HTTP status.",
            ["model", "version", "protocol", "status"],
            registry=r,
        )
        self._request_seconds = Histogram(
            "loopwise_request_duration_seconds",
            "Time from a request's arrival to its answer, in seconds.",
            ["model", "protocol"],
            buckets=DURATION_BUCKETS_S,
            registry=r,
        )
        self._batch_rows = Histogram(
            "loopwise_batch_rows",
            "Rows in each batch handed to a model.",
            ["model"],
            buckets=BATCH_ROWS_BUCKETS,
            registry=r,
        )
        self._batch_seconds = Histogram(
            "loopwise_batch_duration_seconds",
            "Time a model took to predict one batch, in seconds.",
            ["model"],
            buckets=DURATION_BUCKETS_S,
            registry=r,
        )
        self._queue_rows = Gauge(
            "loopwise_queue_rows",
            "Rows waiting in a model's batching queue.",
            ["model"],
            registry=r,
        )
        self._rejected = Counter(
            "loopwise_rejected",
            "Requests refused before prediction, by reason (deadline, queue_full, …).",
            ["model", "reason"],
            registry=r,
        )
        self._cache = Counter(
            "loopwise_cache_requests",
            "Response-cache look-ups, by result (hit or miss).",
            ["model", "result"],
            registry=r,
        )
        self._loads = Counter(
            "loopwise_model_loads",
            "Model versions loaded into memory.",
            ["model"],
            registry=r,
        )
        self._load_seconds = Gauge(
            "loopwise_model_load_seconds",
            "Time the last load of a model version took (download, verify, deserialise), in seconds.",
            ["model", "version"],
            registry=r,
        )
        self._model_bytes = Gauge(
            "loopwise_model_bytes",
            "Memory held by a model's loaded version, in bytes (0 once evicted).",
            ["model"],
            registry=r,
        )
        self._evictions = Counter(
            "loopwise_model_evictions",
            "Models evicted from memory to stay within the memory budget.",
            ["model"],
            registry=r,
        )
        self._model_version = Gauge(
            "loopwise_model_version",
            "The version of each model being served.",
            ["model"],
            registry=r,
        )
        self._shadow = Counter(
            "loopwise_shadow_requests",
            "Copies of requests sent to a deployment's shadow versions, by result (logged, or "
            "why they were dropped: queue_full, deadline, expired, failed, …).",
            ["deployment", "version", "result"],
            registry=r,
        )
        # Labelled children, looked up once per label set: ``labels()`` takes a lock and
        # validates its arguments, which would double the cost of every call on the hot path.
        self._request_children: dict[tuple[str, str, str, int], tuple[Counter, Histogram]] = {}
        self._batch_children: dict[str, tuple[Histogram, Histogram]] = {}
        self._queue_children: dict[str, Gauge] = {}
        self._rejected_children: dict[tuple[str, str], Counter] = {}
        self._cache_children: dict[tuple[str, bool], Counter] = {}
        self._shadow_children: dict[tuple[str, int, str], Counter] = {}

    # -- the request path ---------------------------------------------------------------------

    def request(self, model: str, version: str, protocol: str, status: int, seconds: float) -> None:
        """Count one answered request and observe its latency."""
        key = (model, version, protocol, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self._requests.labels(model, version, protocol, str(status)),
                self._request_seconds.labels(model, protocol),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def batch(self, model: str, version: str, rows: int, seconds: float) -> None:
        """Observe one batch handed to a model: its rows and its prediction time.

        ``version`` is accepted for symmetry with ``request``; batch metrics are per model only,
        which keeps the histogram series few.
        """
        children = self._batch_children.get(model)
        if children is None:
            children = (self._batch_rows.labels(model), self._batch_seconds.labels(model))
            self._batch_children[model] = children
        children[0].observe(rows)
        children[1].observe(seconds)

    def queue_depth(self, model: str, rows: int) -> None:
        """Set the rows now waiting in ``model``'s batching queue."""
        child = self._queue_children.get(model)
        if child is None:
            child = self._queue_children[model] = self._queue_rows.labels(model)
        child.set(rows)

    def queue_change(self, model: str, rows: int) -> None:
        """Add ``rows`` (negative: remove) to ``model``'s waiting rows: the gauge is then the sum
        over every queue of that model (a deployment batches each version apart)."""
        child = self._queue_children.get(model)
        if child is None:
            child = self._queue_children[model] = self._queue_rows.labels(model)
        child.inc(rows)

    def rejected(self, model: str, reason: str) -> None:
        """Count a request refused before prediction (``reason``: "deadline", "queue_full", …)."""
        key = (model, reason)
        child = self._rejected_children.get(key)
        if child is None:
            child = self._rejected_children[key] = self._rejected.labels(model, reason)
        child.inc()

    def cache(self, model: str, hit: bool) -> None:
        """Count one response-cache look-up."""
        key = (model, hit)
        child = self._cache_children.get(key)
        if child is None:
            child = self._cache_children[key] = self._cache.labels(model, "hit" if hit else "miss")
        child.inc()

    def shadow(self, deployment: str, version: int, result: str) -> None:
        """Count one copy of a request sent to a shadow version: ``logged``, or why it was
        dropped (``queue_full``, ``deadline``, ``expired``, ``failed``, …)."""
        key = (deployment, version, result)
        child = self._shadow_children.get(key)
        if child is None:
            child = self._shadow.labels(deployment, str(version), result)
            self._shadow_children[key] = child
        child.inc()

    # -- model life cycle ---------------------------------------------------------------------

    def model_loaded(
        self, model: str, version: str, seconds: float, nbytes: int | None, *, serving: bool = True
    ) -> None:
        """Record that ``model`` now serves ``version``, loaded in ``seconds``.

        ``nbytes`` is the memory the loaded model holds, where the server knows it. With
        ``serving=False`` (a deployment's version, beside others of the same model) only the
        load is counted: the per-model version and memory gauges stay as they are.
        """
        self._loads.labels(model).inc()
        self._load_seconds.labels(model, version).set(seconds)
        if not serving:
            return
        if nbytes is not None:
            self._model_bytes.labels(model).set(nbytes)
        if version.isdecimal():  # registry versions are numbers; anything else has no gauge value
            self._model_version.labels(model).set(int(version))

    def model_evicted(self, model: str) -> None:
        """Record that ``model`` was dropped from memory (it is loaded again when asked for)."""
        self._evictions.labels(model).inc()
        self._model_bytes.labels(model).set(0)

    # -- exposition ---------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of every metric, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
