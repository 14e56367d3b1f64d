"""The inference app's protocols, driven in-process through the real ASGI app."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import httpx
import numpy as np
import pandas as pd
import pytest

import loopwise as lw
from loopwise.registry import models
from loopwise.serving import create_serving_app
from loopwise.serving.batching import BatchPolicy
from loopwise.serving.metrics import ServingMetrics
from loopwise.serving.queues import ModelQueue

from ..server.harness import AppTransport, serve_in_thread

FRAME = pd.DataFrame(
    {"age": [20.0, 25.0, 30.0, 45.0, 50.0, 60.0], "hours": [10, 20, 40, 40, 45, 50]}
)
LABELS = [0, 0, 1, 1, 1, 1]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[models.LoadedModel]:
    from sklearn.linear_model import LogisticRegression

    lw.init(project="serve", uri=tmp_path_factory.mktemp("serve") / "store")
    model = LogisticRegression().fit(FRAME, LABELS)
    with lw.start_run(name="fit", capture_env=False) as run:
        run.log_model(model, name="employment", input_example=FRAME.head(2))
    yield models.load("employment/1")
    lw.shutdown()


@pytest.fixture
def client(loaded: models.LoadedModel) -> Iterator[httpx.Client]:
    app = create_serving_app({"employment": loaded})
    with httpx.Client(transport=AppTransport(app), base_url="http://serve") as client:
        yield client


def expected(loaded: models.LoadedModel, rows: pd.DataFrame) -> list[int]:
    return [int(v) for v in loaded.predict(rows)]


def test_health_and_metadata(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["name"] == "loopwise"
    meta = client.get("/v2/models/employment").json()
    assert meta["versions"] == ["1"]
    assert meta["inputs"] == [
        {"name": "age", "datatype": "FP64", "shape": [-1]},
        {"name": "hours", "datatype": "INT64", "shape": [-1]},
    ]
    assert client.get("/v2/models/employment/ready").json()["ready"] is True
    assert client.get("/v2/models/employment/versions/1").status_code == 200


def test_oip_infer_matches_the_sdk(client: httpx.Client, loaded: models.LoadedModel) -> None:
    body = {
        "id": "req-1",
        "inputs": [
            {"name": "age", "shape": [6], "datatype": "FP64", "data": FRAME["age"].tolist()},
            {
                "name": "hours",
                "shape": [6, 1],
                "datatype": "INT64",
                "data": FRAME["hours"].tolist(),
            },
        ],
    }
    response = client.post("/v2/models/employment/infer", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["id"] == "req-1" and result["model_version"] == "1"
    outputs = {o["name"]: o for o in result["outputs"]}
    assert outputs["predict"]["data"] == expected(loaded, FRAME)
    assert outputs["predict_proba"]["shape"] == [6, 2]
    proba = np.asarray(outputs["predict_proba"]["data"]).reshape(6, 2)
    np.testing.assert_allclose(proba, loaded.predict_proba(FRAME))
    only = client.post(
        "/v2/models/employment/versions/1/infer", json={**body, "outputs": [{"name": "predict"}]}
    ).json()
    assert [o["name"] for o in only["outputs"]] == ["predict"]


def test_batch_equals_loop(client: httpx.Client) -> None:
    """Scoring rows together gives what scoring each alone gives."""
    records = FRAME.to_dict(orient="records")
    together = client.post("/predict", json=records).json()["predictions"]
    alone = [client.post("/predict", json=[r]).json()["predictions"][0] for r in records]
    assert together == alone


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", {"dataframe_split": {"columns": ["age", "hours"], "data": FRAME.values.tolist()}}),
        ("application/json", {"dataframe_records": FRAME.to_dict(orient="records")}),
        ("application/json", {"instances": FRAME.to_dict(orient="records")}),
        ("application/json", {"inputs": {"age": FRAME["age"].tolist(), "hours": FRAME["hours"].tolist()}}),
        ("text/csv", FRAME.to_csv(index=False)),
    ],
)  # fmt: skip
def test_mlflow_invocations_formats(
    client: httpx.Client, loaded: models.LoadedModel, content_type: str, body: object
) -> None:
    kwargs = {"content": body} if isinstance(body, str) else {"json": body}
    response = client.post("/invocations", headers={"Content-Type": content_type}, **kwargs)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == expected(loaded, FRAME)


def test_predict_gives_probabilities(client: httpx.Client, loaded: models.LoadedModel) -> None:
    result = client.post("/predict", json={"records": FRAME.head(2).to_dict(orient="records")})
    body = result.json()
    assert body["model"] == "employment" and body["version"] == 1
    np.testing.assert_allclose(body["probabilities"], loaded.predict_proba(FRAME.head(2)))


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "needle"),
    [
        ("post", "/predict", {"json": [{"age": 30.0}]}, 422, "hours"),
        ("post", "/predict", {"json": [{"age": "old", "hours": 3}]}, 422, "age"),
        ("post", "/predict", {"json": []}, 400, "records"),
        ("post", "/predict", {"content": b"{nope"}, 400, "JSON"),
        ("post", "/v2/models/employment/infer", {"json": {"inputs": [{"name": "age"}]}}, 400, "missing"),
        ("post", "/v2/models/employment/infer", {"json": {"inputs": [{"name": "age", "shape": [3], "datatype": "FP64", "data": [1, 2]}]}}, 400, "shape"),
        ("post", "/v2/models/employment/infer", {"json": {"inputs": [{"name": "age", "shape": [1], "datatype": "FP99", "data": [1]}]}}, 400, "datatype"),
        ("post", "/v2/models/nope/infer", {"json": {"inputs": []}}, 404, "employment"),
        ("get", "/v2/models/employment/versions/7", {}, 404, "7"),
        ("post", "/invocations", {"json": {"dataframe_split": {}, "instances": []}}, 400, "exactly one"),
        ("post", "/invocations", {"content": b"x", "headers": {"Content-Type": "text/plain"}}, 400, "text/csv"),
    ],
)  # fmt: skip
def test_bad_input_is_a_clear_4xx(
    client: httpx.Client,
    method: str,
    path: str,
    kwargs: dict[str, object],
    status: int,
    needle: str,
) -> None:
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    if path.startswith("/v2"):  # the Open Inference Protocol's shape: the message as a string
        message, code = body["error"], body["code"]
    else:
        message, code = body["error"]["message"], body["error"]["code"]
    assert needle in message, body
    assert code in ("invalid_argument", "signature_mismatch", "not_found"), body


class _Slow:
    """A model that takes ``seconds`` per call: requests pile up behind it and get batched."""

    def __init__(self, model: object, seconds: float) -> None:
        self.model, self.seconds = model, seconds
        self.calls: list[int] = []

    def predict(self, X: pd.DataFrame) -> object:
        self.calls.append(len(X))
        time.sleep(self.seconds)
        return self.model.predict(X)  # type: ignore[attr-defined]


def _slow_app(loaded: models.LoadedModel, seconds: float, **policy: float) -> tuple[object, _Slow]:
    slow = _Slow(loaded.model, seconds)
    app = create_serving_app(
        {"employment": models.LoadedModel(loaded.version, slow)},
        policies=BatchPolicy(**policy),  # type: ignore[arg-type]
    )
    return app, slow


def _post_all(
    base: str, bodies: list[object], headers: dict[str, str] | None = None
) -> list[httpx.Response]:
    with httpx.Client(base_url=base, timeout=30) as client, ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda b: client.post("/predict", json=b, headers=headers), bodies))


def test_concurrent_requests_are_batched_and_each_gets_its_own_rows(
    loaded: models.LoadedModel,
) -> None:
    app, slow = _slow_app(loaded, 0.05, max_wait_s=0)
    records = FRAME.to_dict(orient="records") * 3
    with serve_in_thread(app) as base:
        responses = _post_all(base, [[r] for r in records])
    assert [r.status_code for r in responses] == [200] * len(records)
    got = [r.json()["predictions"][0] for r in responses]
    assert got == [int(v) for v in loaded.predict(pd.DataFrame(records))]
    assert max(slow.calls) > 1 and sum(slow.calls) == len(records)


def test_a_row_the_model_rejects_fails_only_its_own_request(loaded: models.LoadedModel) -> None:
    app, slow = _slow_app(loaded, 0.05, max_wait_s=0)
    good = FRAME.to_dict(orient="records")
    bodies: list[object] = [[r] for r in good]
    bodies.insert(3, [{"age": None, "hours": 10}])  # NaN: LogisticRegression refuses it
    with serve_in_thread(app) as base:
        responses = _post_all(base, bodies)
    statuses = [r.status_code for r in responses]
    assert statuses.pop(3) == 400 and statuses == [200] * len(good)
    assert "NaN" in responses[3].json()["error"]["message"]
    assert max(slow.calls) > 1  # the bad row really shared a batch with good ones


def test_overload_gets_503_with_retry_after_instead_of_waiting(
    loaded: models.LoadedModel,
) -> None:
    app, _ = _slow_app(loaded, 0.05, max_wait_s=0, max_batch_rows=1, slo_s=0.12)
    records = FRAME.to_dict(orient="records")
    with serve_in_thread(app) as base:
        _post_all(base, [[records[0]]])  # the server learns the model's speed
        responses = _post_all(base, [[r] for r in records * 3])
        patient = _post_all(base, [[r] for r in records], headers={"X-Deadline-Ms": "10000"})
    refused = [r for r in responses if r.status_code == 503]
    assert refused and any(r.status_code == 200 for r in responses)
    for r in refused:
        assert int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"]["code"] == "unavailable"
        assert "deadline" in r.json()["error"]["message"]
    assert [r.status_code for r in patient] == [200] * len(records)


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("post", "/predict", {"json": [{"age": 1.0, "hours": 2}], "headers": {"X-Deadline-Ms": "soon"}}, 400, "invalid_argument"),
        ("post", "/predict", {"json": [{"age": 1.0, "hours": 2}], "headers": {"X-Deadline-Ms": "-5"}}, 400, "invalid_argument"),
        ("get", "/nowhere", {}, 404, "not_found"),
        ("get", "/invocations", {}, 405, "method_not_allowed"),
        ("post", "/v2/models/employment/versions/1/infer/extra", {"json": {}}, 404, "not_found"),
        ("post", "/v2/models/employment/infer", {"json": {"inputs": [{"name": "age", "shape": [1], "datatype": "FP64", "data": [1]}], "outputs": [{"name": "bogus"}]}}, 400, "invalid_argument"),
    ],
)  # fmt: skip
def test_routes_and_headers_are_checked(
    client: httpx.Client,
    method: str,
    path: str,
    kwargs: dict[str, object],
    status: int,
    code: str,
) -> None:
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["code"] if path.startswith("/v2") else body["error"]["code"]) == code


def test_mlflow_ping_and_server_metadata(client: httpx.Client) -> None:
    assert client.get("/ping").status_code == 200
    assert "binary_tensor_data" in client.get("/v2").json()["extensions"]


@pytest.mark.slow
def test_model_process_computes_and_comes_back_after_a_kill(loaded: models.LoadedModel) -> None:
    app = create_serving_app({"employment": loaded}, processes=True)
    body = {"dataframe_split": {"columns": ["age", "hours"], "data": FRAME.values.tolist()}}
    with (
        serve_in_thread(app, lifespan="on") as base,
        httpx.Client(base_url=base, timeout=60) as client,
    ):
        first = client.post("/invocations", json=body)
        assert first.status_code == 200, first.text
        assert first.json()["predictions"] == expected(loaded, FRAME)
        worker = cast(ModelQueue, app._served["employment"]).worker
        assert worker is not None and worker._process is not None
        os.kill(worker._process.pid, signal.SIGKILL)
        worker._process.wait()
        lost = client.post("/invocations", json=body)
        assert lost.status_code in (200, 503), lost.text  # the batch in flight, if any, fails
        again = client.post("/invocations", json=body)
        assert again.status_code == 200 and again.json()["predictions"] == expected(loaded, FRAME)
        bad = client.post("/predict", json=[{"age": "old", "hours": 1}])
        assert bad.status_code == 422  # checked in the server, before the model process
    assert worker._process is None  # the server's shutdown stopped the model process


def test_the_cache_answers_repeats_and_shares_computations(loaded: models.LoadedModel) -> None:
    slow = _Slow(loaded.model, 0.05)
    metrics = ServingMetrics()
    app = create_serving_app(
        {"employment": models.LoadedModel(loaded.version, slow)},
        cache_bytes={"employment": 1 << 20},
        metrics=metrics,
    )
    record = FRAME.head(1).to_dict(orient="records")
    with serve_in_thread(app) as base:
        first = _post_all(base, [record] * 8)  # identical, concurrent: one computation
        assert len(slow.calls) == 1
        again = _post_all(base, [record])
        other = _post_all(base, [FRAME.tail(1).to_dict(orient="records")])
    assert len(slow.calls) == 2  # the repeat came from the cache; the new row did not
    answers = {r.content for r in first + again}
    assert len(answers) == 1 and all(r.status_code == 200 for r in first + again + other)
    text = metrics.render()[0].decode()
    assert 'loopwise_cache_requests_total{model="employment",result="hit"} 8.0' in text
    assert 'loopwise_cache_requests_total{model="employment",result="miss"} 2.0' in text


def test_cache_for_a_model_not_served_is_refused(loaded: models.LoadedModel) -> None:
    with pytest.raises(lw.errors.NotFoundError, match="nope"):
        create_serving_app({"employment": loaded}, cache_bytes={"nope": 1000})


def test_every_answered_row_is_in_the_prediction_log(
    loaded: models.LoadedModel, tmp_path: Path
) -> None:
    from loopwise.store import open_store
    from loopwise.store.predictions import PredictionSpool, read_predictions

    store = open_store(tmp_path / "logstore")
    store.get_or_create_project("serve")
    spool = PredictionSpool(store, directory=tmp_path / "spool").open()
    app = create_serving_app({"employment": loaded}, prediction_log=spool, project="serve")
    rows = FRAME.to_dict(orient="records")
    with httpx.Client(transport=AppTransport(app), base_url="http://serve") as client:
        one = client.post("/predict", json=rows[:1], headers={"X-Request-Id": "req-1"})
        two = client.post("/invocations", json={"dataframe_records": rows[1:3]})
        bad = client.post("/predict", json=[{"age": "old", "hours": 1}])
    assert one.headers["x-request-id"] == "req-1" and bad.status_code == 422
    generated = two.headers["x-request-id"]
    app.close()  # drains the spool into the store
    log = read_predictions(store, "serve", "employment")
    assert sorted(log["request_id"]) == sorted(["req-1", f"{generated}:0", f"{generated}:1"])
    first = log.set_index("request_id").loc["req-1"]
    assert first["input.age"] == rows[0]["age"] and first["input.hours"] == rows[0]["hours"]
    assert first["output.predict"] == one.json()["predictions"][0]
    np.testing.assert_allclose(first["output.predict_proba"], one.json()["probabilities"][0])
    assert first["version"] == 1 and first["model"] == "employment" and first["latency_ms"] > 0
    store.close()


def test_a_request_id_too_long_to_log_is_refused(client: httpx.Client) -> None:
    response = client.post(
        "/predict", json=[{"age": 1.0, "hours": 2}], headers={"X-Request-Id": "x" * 300}
    )
    assert response.status_code == 400 and "X-Request-Id" in response.json()["error"]["message"]


@pytest.mark.parametrize("threads", [1, 3])
def test_computing_in_threads_gives_the_model_model_threads(
    loaded: models.LoadedModel, threads: int
) -> None:
    """With --compute thread the batch thread's OpenMP pool has --model-threads threads, as a
    model process's has (spinning idle OpenMP threads would take the event loop's CPU)."""
    from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: F401 (loads OpenMP)
    from threadpoolctl import threadpool_info  # type: ignore[import-untyped]

    app = create_serving_app({"employment": loaded}, model_threads=threads)
    try:
        queue = app._served["employment"]
        assert isinstance(queue, ModelQueue) and queue.executor is not None
        seen = queue.executor.submit(threadpool_info).result()
        openmp = {lib["num_threads"] for lib in seen if lib["user_api"] == "openmp"}
        assert openmp == {threads}
    finally:
        app.close()
