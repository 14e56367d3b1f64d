"""Deployments served by the inference app, in-process: assignment, plan changes, errors."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, SupportsInt, cast

import httpx
import pandas as pd
import pytest

import loopwise as lw
from loopwise.context import Context
from loopwise.errors import InvalidArgumentError, NotFoundError
from loopwise.serving import create_serving_app
from loopwise.serving.app import ServingApp
from loopwise.serving.metrics import ServingMetrics
from loopwise.serving.models import ServedModels
from loopwise.store.predictions import PredictionSpool, read_predictions

from ..server.harness import AppTransport

FRAME = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
LABELS = {1: [0, 0, 1, 1], 2: [1, 1, 0, 0], 3: [0, 1, 1, 0]}
"""Each version predicts differently, so an answer shows which version computed it."""


def register_versions(count: int = 3) -> None:
    from sklearn.linear_model import LogisticRegression

    with lw.start_run(name="fit", capture_env=False) as run:
        for version in range(1, count + 1):
            model = LogisticRegression().fit(FRAME, LABELS[version])
            run.log_model(model, name="toy", input_example=FRAME)


def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def on_loop(transport: AppTransport, call: Callable[[], Any]) -> Any:
    """Run ``call`` on the app's event loop (as uvicorn's lifespan does) and return its result."""

    async def run() -> Any:
        result = call()
        return await result if asyncio.iscoroutine(result) else result

    return asyncio.run_coroutine_threadsafe(run(), transport.loop).result()


@contextmanager
def serving(
    ctx: Context, deployments: list[str], refs: list[str] | None = None, **options: Any
) -> Iterator[tuple[httpx.Client, ServingApp]]:
    """A started app serving ``deployments`` (thread compute, polling every 0.1 s)."""
    served = ServedModels(
        refs or [], deployments=deployments, store=ctx.store, project=ctx.project,
        poll_interval_s=0.1,
    )  # fmt: skip
    app = create_serving_app(served, **options)
    transport = AppTransport(app)
    client = httpx.Client(transport=transport, base_url="http://serve")
    try:
        on_loop(transport, app.start)
        yield client, app
    finally:
        on_loop(transport, app.close)
        client.close()  # and the transport's loop


def test_each_request_is_answered_by_the_version_its_key_is_assigned(
    ctx: Context, tmp_path: Path
) -> None:
    register_versions(2)
    deployment = lw.deployments.create("toy-ab", "toy", {1: 50, 2: 50})
    spool = PredictionSpool(ctx.store, directory=tmp_path / "spool", durability="write").open()
    answered: dict[str, int] = {}
    with serving(ctx, ["toy-ab"], prediction_log=spool, project=ctx.project) as (client, _):
        for i in range(60):
            key = f"user-{i}"
            response = client.post("/predict", json=[{"x": 0.0}], headers={"X-Request-Key": key})
            assert response.status_code == 200, response.text
            body = response.json()
            version = lw.deployments.assign(deployment, key)
            assert body["model"] == "toy-ab" and body["version"] == version
            assert response.headers["x-model-version"] == str(version)
            assert body["predictions"] == [LABELS[version][0]]  # that version computed it
            answered[response.headers["x-request-id"]] = version
        assert set(answered.values()) == {1, 2}
        again = client.post(
            "/invocations",
            json={"dataframe_records": [{"x": 0.0}]},
            headers={"X-Request-Key": "user-7"},
        )
        assert again.headers["x-model-version"] == str(lw.deployments.assign(deployment, "user-7"))
    log = read_predictions(ctx.store, ctx.project, "toy-ab")  # closing drained the spool
    rows = log.set_index("request_id")
    assert set(log["deployment"]) == {"toy-ab"} and set(log["model"]) == {"toy"}
    assert not log["shadow"].any()
    assert {rid: int(cast(SupportsInt, rows.loc[rid, "version"])) for rid in answered} == answered


def test_without_a_key_a_request_is_assigned_by_its_request_id(ctx: Context) -> None:
    register_versions(2)
    deployment = lw.deployments.create("toy-ab", "toy", {1: 50, 2: 50})
    with serving(ctx, ["toy-ab"]) as (client, _):
        versions = set()
        for i in range(30):
            response = client.post(
                "/predict", json=[{"x": 1.0}], headers={"X-Request-Id": f"req-{i}"}
            )
            version = lw.deployments.assign(deployment, f"req-{i}")
            assert response.json()["version"] == version
            versions.add(version)
        assert versions == {1, 2}
        anonymous = client.post("/predict", json=[{"x": 1.0}])  # a random request id
        generated = anonymous.headers["x-request-id"]
        assert anonymous.json()["version"] == lw.deployments.assign(deployment, generated)


def test_a_new_plan_is_followed_once_its_versions_are_warm(ctx: Context) -> None:
    register_versions(3)
    lw.deployments.create("toy-prod", "toy", 1)
    metrics = ServingMetrics()
    with serving(ctx, ["toy-prod"], metrics=metrics) as (client, app):
        assert client.post("/predict", json=[{"x": 0.0}]).json()["version"] == 1
        lw.deployments.set_plan("toy-prod", {2: 100}, reason="version 2 for everyone")
        seen: list[int] = []

        def answers_from_two() -> bool:
            response = client.post("/predict", json=[{"x": 0.0}])
            assert response.status_code == 200, response.text  # no request fails meanwhile
            seen.append(response.json()["version"])
            return seen[-1] == 2

        wait_for(answers_from_two)
        assert all(v == 2 for v in seen[seen.index(2) :])  # the switch is once and for all
        old = ServedModels.version_key("toy-prod", "toy", 1)

        def released() -> bool:
            try:
                app.models.state(old)
            except NotFoundError:
                return True
            return False

        wait_for(released)  # version 1 is let go once idle
        meta = client.get("/v2/models/toy-prod").json()
        assert meta["name"] == "toy-prod" and meta["versions"] == ["2"]
        text = metrics.render()[0].decode()
        assert (
            'loopwise_requests_total{model="toy",protocol="predict",status="200",version="2"}'
            in text
        )


def test_versions_by_path_metadata_readiness_and_bad_keys(ctx: Context) -> None:
    register_versions(2)
    lw.deployments.create("toy-ab", "toy", {1: 50, 2: 50})
    with serving(ctx, ["toy-ab"], refs=["toy/1"]) as (client, _):
        tensor = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [0.0]}]}
        for version in (1, 2):
            pinned = client.post(f"/v2/models/toy-ab/versions/{version}/infer", json=tensor)
            assert pinned.json()["model_version"] == str(version), pinned.text
        missing = client.post("/v2/models/toy-ab/versions/3/infer", json=tensor)
        assert missing.status_code == 404 and "'1', '2'" in missing.json()["error"]
        assert client.get("/v2/models/toy-ab/ready").json() == {"name": "toy-ab", "ready": True}
        assert client.get("/v2/health/ready").json() == {"ready": True}
        assert client.get("/v2/models/toy-ab").json()["versions"] == ["1", "2"]
        long_key = client.post(
            "/predict?model=toy-ab", json=[{"x": 0.0}], headers={"X-Request-Key": "k" * 300}
        )
        assert (
            long_key.status_code == 400 and "X-Request-Key" in long_key.json()["error"]["message"]
        )
        several = client.post("/predict", json=[{"x": 0.0}])
        assert several.status_code == 400 and "toy-ab" in several.json()["error"]["message"]
        model = client.post("/predict?model=toy", json=[{"x": 0.0}])
        assert model.json() | {"probabilities": None} == {
            "model": "toy", "version": 1, "predictions": [0], "probabilities": None,
        }  # fmt: skip


def test_a_deployment_that_does_not_exist_is_refused_at_start(ctx: Context) -> None:
    register_versions(1)
    served = ServedModels([], deployments=["nope"], store=ctx.store, project=ctx.project)
    app = create_serving_app(served)
    with pytest.raises(NotFoundError, match="No deployment named 'nope'"):
        asyncio.run(app.start())
    app.close()


@pytest.mark.parametrize(
    ("refs", "deployments", "message"),
    [
        ([], "toy-prod", r"list of names.*\['toy-prod'\]"),
        ([], ["a", "a"], "'a' is named twice"),
        (["toy"], ["toy"], "'toy' is named twice"),
        ([], ["no spaces"], "deployment"),
    ],
)
def test_deployment_names_are_checked(
    ctx: Context, refs: list[str], deployments: Any, message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        ServedModels(refs, deployments=deployments, store=ctx.store, project=ctx.project)


def test_a_deployment_that_vanishes_keeps_serving_its_last_plan(
    ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    register_versions(2)
    lw.deployments.create("toy-prod", "toy", 2)
    with serving(ctx, ["toy-prod"]) as (client, _):
        assert client.post("/predict", json=[{"x": 0.0}]).json()["version"] == 2
        with caplog.at_level(logging.WARNING, logger="loopwise.serving.deployments"):
            # As if someone removed it from the database behind the store's back.
            with sqlite3.connect(Path(ctx.store.uri) / "loopwise.db") as db:
                db.execute("UPDATE deployments SET name = 'renamed' WHERE name = 'toy-prod'")
            wait_for(lambda: "no longer in the store" in caplog.text)
        response = client.post("/predict", json=[{"x": 0.0}])
        assert response.status_code == 200 and response.json()["version"] == 2
    assert caplog.text.count("no longer in the store") == 1  # said once, not every poll
