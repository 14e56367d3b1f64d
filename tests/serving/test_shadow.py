"""Shadow versions: copies of answered requests, logged with shadow=True, never returned."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import loopwise as lw
from loopwise.context import Context
from loopwise.monitoring import monitoring_frame
from loopwise.serving.metrics import ServingMetrics
from loopwise.store.predictions import PredictionSpool, read_predictions

from .test_deployments import FRAME, LABELS, register_versions, serving, wait_for


@pytest.mark.parametrize("processes", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_shadow_answers_are_logged_beside_the_live_ones_and_never_returned(
    ctx: Context, tmp_path: Path, processes: bool
) -> None:
    """With model processes, each version's process logs its own rows (shadow ones too)."""
    register_versions(2)
    lw.deployments.create("toy-prod", "toy", lw.deployments.TrafficPlan({1: 100}, shadow=[2]))
    spool = PredictionSpool(ctx.store, directory=tmp_path / "spool", durability="write").open()
    metrics = ServingMetrics()
    options = {
        "prediction_log": spool, "project": ctx.project, "metrics": metrics,
        "processes": processes,
    }  # fmt: skip
    ids = []
    with serving(ctx, ["toy-prod"], **options) as (client, _):
        for i in range(10):
            response = client.post("/predict", json=[{"x": 0.0}], headers={"X-Request-Key": f"{i}"})
            assert response.json()["version"] == 1 and response.json()["predictions"] == [0]
            ids.append(response.headers["x-request-id"])
        two = client.post("/predict", json=[{"x": 0.0}, {"x": 3.0}])
        assert two.headers["x-model-version"] == "1"
        ids += [f"{two.headers['x-request-id']}:{i}" for i in range(2)]
        logged = (
            'loopwise_shadow_requests_total{deployment="toy-prod",result="logged",version="2"} 11.0'
        )
        wait_for(lambda: logged in metrics.render()[0].decode())
    log = read_predictions(ctx.store, ctx.project, "toy-prod")
    live, shadow = log[~log["shadow"]], log[log["shadow"]]
    assert sorted(live["request_id"]) == sorted(ids) and set(live["version"]) == {1}
    assert sorted(shadow["request_id"]) == sorted(ids) and set(shadow["version"]) == {2}
    assert set(shadow["model"]) == {"toy"} and set(shadow["deployment"]) == {"toy-prod"}
    by_id = shadow.set_index("request_id")
    assert by_id.loc[ids[0], "output.predict"] == LABELS[2][0]  # version 2's own answer
    assert by_id.loc[ids[-1], "input.x"] == 3.0
    # Monitoring reads the traffic clients got, unless asked for the shadow's.
    assert sorted(monitoring_frame("toy-prod")["request_id"]) == sorted(ids)
    assert set(monitoring_frame("toy-prod")["version"]) == {1}
    assert set(monitoring_frame("toy-prod", shadow=True)["version"]) == {2}
    assert len(monitoring_frame("toy-prod", shadow=None)) == 2 * len(ids)


def test_a_shadow_copy_that_fails_is_dropped_and_counted_and_the_answer_stands(
    ctx: Context, tmp_path: Path
) -> None:
    from sklearn.linear_model import LogisticRegression

    register_versions(1)
    other = pd.DataFrame({"y": FRAME["x"]})  # version 2 takes another column: no copy fits
    with lw.start_run(name="other", capture_env=False) as run:
        run.log_model(
            LogisticRegression().fit(other, [0, 0, 1, 1]), name="toy", input_example=other
        )
    lw.deployments.create("toy-prod", "toy", lw.deployments.TrafficPlan({1: 100}, shadow=[2]))
    spool = PredictionSpool(ctx.store, directory=tmp_path / "spool", durability="write").open()
    metrics = ServingMetrics()
    options = {"prediction_log": spool, "project": ctx.project, "metrics": metrics}
    with serving(ctx, ["toy-prod"], **options) as (client, _):
        for _ in range(3):
            response = client.post("/predict", json=[{"x": 1.0}])
            assert response.status_code == 200 and response.json()["version"] == 1
        failed = (
            'loopwise_shadow_requests_total{deployment="toy-prod",result="failed",version="2"} 3.0'
        )
        wait_for(lambda: failed in metrics.render()[0].decode())
    log = read_predictions(ctx.store, ctx.project, "toy-prod")
    assert len(log) == 3 and not log["shadow"].any()
