"""ServingMetrics: what render() exposes, and a real Prometheus scraping it and answering queries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from loopwise.serving.metrics import BATCH_ROWS_BUCKETS, DURATION_BUCKETS_S, ServingMetrics

from ..prometheus_harness import PrometheusServer, values
from ..server.harness import serve_in_thread

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(metrics: ServingMetrics) -> Samples:
    """Every sample of render(), keyed by sample name and labels."""
    body, _ = metrics.render()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def value(all_samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in all_samples, f"{name}{labels} not exposed; have {sorted(k for k in all_samples)}"
    return all_samples[key]


def test_requests_are_counted_by_model_version_protocol_and_status() -> None:
    metrics = ServingMetrics()
    for _ in range(3):
        metrics.request("employment", "3", "v2", 200, 0.002)
    metrics.request("employment", "3", "v2", 422, 0.0004)
    metrics.request("employment", "3", "invocations", 200, 0.3)
    s = samples(metrics)
    labels = {"model": "employment", "version": "3"}
    assert value(s, "loopwise_requests_total", **labels, protocol="v2", status="200") == 3
    assert value(s, "loopwise_requests_total", **labels, protocol="v2", status="422") == 1
    assert value(s, "loopwise_requests_total", **labels, protocol="invocations", status="200") == 1

    v2 = {"model": "employment", "protocol": "v2"}
    assert value(s, "loopwise_request_duration_seconds_count", **v2) == 4
    assert value(s, "loopwise_request_duration_seconds_sum", **v2) == pytest.approx(0.0064)
    # buckets are cumulative: 0.0004 s is under 0.5 ms, the three 2 ms requests under 2.5 ms
    assert value(s, "loopwise_request_duration_seconds_bucket", **v2, le="0.0005") == 1
    assert value(s, "loopwise_request_duration_seconds_bucket", **v2, le="0.001") == 1
    assert value(s, "loopwise_request_duration_seconds_bucket", **v2, le="0.0025") == 4
    assert value(s, "loopwise_request_duration_seconds_bucket", **v2, le="+Inf") == 4
    slow = {"model": "employment", "protocol": "invocations"}
    assert value(s, "loopwise_request_duration_seconds_bucket", **slow, le="0.25") == 0
    assert value(s, "loopwise_request_duration_seconds_bucket", **slow, le="0.5") == 1


def test_latency_buckets_span_half_a_millisecond_to_ten_seconds() -> None:
    metrics = ServingMetrics()
    metrics.request("m", "1", "predict", 200, 0.01)
    les = [
        float(dict(labels)["le"])
        for name, labels in samples(metrics)
        if name == "loopwise_request_duration_seconds_bucket"
    ]
    assert sorted(les) == [*DURATION_BUCKETS_S, float("inf")]
    assert DURATION_BUCKETS_S[0] == 0.0005 and DURATION_BUCKETS_S[-1] == 10.0


def test_batches_record_rows_and_duration_per_model() -> None:
    metrics = ServingMetrics()
    metrics.batch("employment", "3", 16, 0.004)
    metrics.batch("employment", "3", 1, 0.001)
    metrics.batch("employment", "3", 1000, 0.2)
    s = samples(metrics)
    m = {"model": "employment"}
    assert BATCH_ROWS_BUCKETS == (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
    assert value(s, "loopwise_batch_rows_bucket", **m, le="1.0") == 1
    assert value(s, "loopwise_batch_rows_bucket", **m, le="8.0") == 1
    assert value(s, "loopwise_batch_rows_bucket", **m, le="16.0") == 2
    assert value(s, "loopwise_batch_rows_bucket", **m, le="1024.0") == 3
    assert value(s, "loopwise_batch_rows_sum", **m) == 1017
    assert value(s, "loopwise_batch_duration_seconds_count", **m) == 3
    assert value(s, "loopwise_batch_duration_seconds_sum", **m) == pytest.approx(0.205)


def test_queue_rejections_and_cache() -> None:
    metrics = ServingMetrics()
    metrics.queue_depth("employment", 40)
    metrics.queue_depth("employment", 7)  # a gauge: the last value counts
    metrics.rejected("employment", "deadline")
    metrics.rejected("employment", "queue_full")
    metrics.rejected("employment", "queue_full")
    for hit in (True, True, False):
        metrics.cache("employment", hit)
    s = samples(metrics)
    m = {"model": "employment"}
    assert value(s, "loopwise_queue_rows", **m) == 7
    assert value(s, "loopwise_rejected_total", **m, reason="deadline") == 1
    assert value(s, "loopwise_rejected_total", **m, reason="queue_full") == 2
    assert value(s, "loopwise_cache_requests_total", **m, result="hit") == 2
    assert value(s, "loopwise_cache_requests_total", **m, result="miss") == 1


def test_queues_of_one_model_add_up_and_shadow_copies_are_counted() -> None:
    metrics = ServingMetrics()
    metrics.queue_change("employment", 5)  # a deployment's version 1 queues 5 rows
    metrics.queue_change("employment", 3)  # its version 2 queues 3
    metrics.queue_change("employment", -5)  # version 1's batch leaves
    metrics.shadow("employment-prod", 4, "logged")
    metrics.shadow("employment-prod", 4, "logged")
    metrics.shadow("employment-prod", 4, "queue_full")
    metrics.model_loaded("employment", "4", 0.3, 2048, serving=False)  # a deployment's version
    s = samples(metrics)
    assert value(s, "loopwise_queue_rows", model="employment") == 3
    shadow = {"deployment": "employment-prod", "version": "4"}
    assert value(s, "loopwise_shadow_requests_total", **shadow, result="logged") == 2
    assert value(s, "loopwise_shadow_requests_total", **shadow, result="queue_full") == 1
    assert value(s, "loopwise_model_loads_total", model="employment") == 1
    assert value(s, "loopwise_model_load_seconds", model="employment", version="4") == 0.3
    assert ("loopwise_model_version", frozenset({("model", "employment")})) not in s


def test_model_loads_versions_and_evictions() -> None:
    metrics = ServingMetrics()
    metrics.model_loaded("employment", "3", 0.8, 1_500_000)
    metrics.model_evicted("employment")
    metrics.model_loaded("employment", "4", 0.5, 2_000_000)
    metrics.model_loaded("income", "1", 0.1, None)  # size unknown: no bytes series
    s = samples(metrics)
    assert value(s, "loopwise_model_loads_total", model="employment") == 2
    assert value(s, "loopwise_model_load_seconds", model="employment", version="3") == 0.8
    assert value(s, "loopwise_model_load_seconds", model="employment", version="4") == 0.5
    assert value(s, "loopwise_model_bytes", model="employment") == 2_000_000
    assert value(s, "loopwise_model_version", model="employment") == 4
    assert value(s, "loopwise_model_version", model="income") == 1
    assert ("loopwise_model_bytes", frozenset({("model", "income")})) not in s
    assert value(s, "loopwise_model_evictions_total", model="employment") == 1

    metrics.model_evicted("employment")
    assert value(samples(metrics), "loopwise_model_bytes", model="employment") == 0


def test_each_instance_has_its_own_registry() -> None:
    first, second = ServingMetrics(), ServingMetrics()  # the global registry would refuse this
    first.request("a", "1", "v2", 200, 0.01)
    assert not [name for name, _ in samples(second) if name == "loopwise_requests_total"]
    assert REGISTRY.get_sample_value("loopwise_requests_total") is None


def test_render_gives_the_text_format_and_its_content_type() -> None:
    metrics = ServingMetrics()
    metrics.request("employment", "3", "predict", 200, 0.01)
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    assert b"# TYPE loopwise_requests_total counter" in body
    assert b"# TYPE loopwise_request_duration_seconds histogram" in body


# -- a real Prometheus scraping a real HTTP endpoint ------------------------------------------

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def metrics_app(metrics: ServingMetrics) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The smallest ASGI app that exposes ``metrics`` at /metrics."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        if scope["path"] == "/metrics":
            body, content_type = metrics.render()
            status, headers = 200, [(b"content-type", content_type.encode())]
        else:
            body, status, headers = b"not found", 404, []
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.mark.slow
def test_prometheus_scrapes_and_answers_queries() -> None:
    metrics = ServingMetrics()
    for _ in range(3):
        metrics.request("employment", "3", "v2", 200, 0.004)
    metrics.request("employment", "3", "v2", 422, 0.001)
    metrics.model_loaded("employment", "3", 0.25, 1024)

    with (
        serve_in_thread(metrics_app(metrics)) as url,
        PrometheusServer(f"{url}/metrics", scrape_interval_s=0.5) as prometheus,
    ):
        ok = 'loopwise_requests_total{model="employment",protocol="v2",status="200"}'
        result = prometheus.query(ok)
        assert values(result) == [3.0]
        assert result[0]["metric"]["version"] == "3"
        assert result[0]["metric"]["job"] == "loopwise"

        # later scrapes see later requests
        metrics.request("employment", "3", "v2", 200, 0.004)
        metrics.request("employment", "3", "v2", 200, 0.004)
        assert values(prometheus.query(ok, until=lambda r: values(r) == [5.0])) == [5.0]

        # the histogram's buckets are usable by PromQL: the median is in the (2.5 ms, 5 ms] bucket
        median = prometheus.query(
            "histogram_quantile(0.5, sum by (le) "
            '(loopwise_request_duration_seconds_bucket{model="employment"}))',
            until=lambda r: bool(r) and r[0]["value"][1] != "NaN",
        )
        assert 0.0025 < values(median)[0] <= 0.005
        assert values(prometheus.query('loopwise_model_version{model="employment"}')) == [3.0]
