"""Shadow versions: copies of answered requests, logged with shadow=True, never returned."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any, cast

import pandas as pd
import pytest

import loopwise as lw
from loopwise.context import Context
from loopwise.monitoring import monitoring_frame
from loopwise.serving.http import INLINE_PARSE_BYTES
from loopwise.serving.metrics import ServingMetrics
from loopwise.serving.schema import Inputs, InputSchema, rows_of
from loopwise.store.predictions import PredictionSpool, read_predictions

from ..server.harness import AppTransport
from .test_deployments import FRAME, LABELS, register_versions, serving, wait_for

LOOP_BUDGET_S = 2.0
"""Longest the event loop may be held while a copy is checked; a few milliseconds is normal."""


@pytest.mark.parametrize("processes", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_shadow_answers_are_logged_beside_the_live_ones_and_never_returned(
    ctx: Context, tmp_path: Path, processes: bool
) -> None:
    """With model processes, each version's process logs its own rows (shadow ones too)."""
    register_versions(2)
    lw.deployments.create("toy-prod", "toy", lw.deployments.TrafficPlan({1: 100}, shadow=[2]))
    spool = PredictionSpool(ctx.store, directory=tmp_path / "spool", durability="write").open()
    metrics = ServingMetrics()
    options: dict[str, Any] = {
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


@pytest.mark.parametrize("rows", [1, 8000])  # checked inline, and in a thread (a large body)
def test_a_shadow_copy_that_fails_is_dropped_and_counted_and_the_answer_stands(
    ctx: Context, tmp_path: Path, rows: int
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
    options: dict[str, Any] = {"prediction_log": spool, "project": ctx.project, "metrics": metrics}
    with serving(ctx, ["toy-prod"], **options) as (client, _):
        for _ in range(3):
            response = client.post("/predict", json=[{"x": 1.0}] * rows)
            assert response.status_code == 200 and response.json()["version"] == 1
        failed = (
            'loopwise_shadow_requests_total{deployment="toy-prod",result="failed",version="2"} 3.0'
        )
        wait_for(lambda: failed in metrics.render()[0].decode())
    log = read_predictions(ctx.store, ctx.project, "toy-prod")
    assert len(log) == 3 * rows and not log["shadow"].any()


class Heartbeat:
    """A task on the app's event loop that measures the longest gap between its ticks (the
    technique of ``test_protocols_fuzz.py``): how long anything held the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.ticks = [time.perf_counter(), 0.0]  # the last tick, the longest gap between ticks
        self.task = asyncio.run_coroutine_threadsafe(self._beat(), loop)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            self.ticks[:] = [now, max(self.ticks[1], now - self.ticks[0])]

    def stop(self) -> float:
        self.task.cancel()
        return max(self.ticks[1], time.perf_counter() - self.ticks[0])


def test_a_large_request_is_checked_for_its_shadow_version_off_the_event_loop(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body over INLINE_PARSE_BYTES is parsed and checked in a thread for its live version;
    its shadow copy is too (a check of millions of values takes a while: here it sleeps, as a
    slow one would), so other requests go on meanwhile. Small copies are checked inline."""
    register_versions(2)
    lw.deployments.create("toy-prod", "toy", lw.deployments.TrafficPlan({1: 100}, shadow=[2]))
    spool = PredictionSpool(ctx.store, directory=tmp_path / "spool", durability="write").open()
    metrics = ServingMetrics()
    checks: list[tuple[int, bool]] = []  # (rows, checked on the event loop's thread)
    real_check = InputSchema.check

    def slow_check(schema: InputSchema, inputs: Inputs) -> Inputs:
        rows = rows_of(inputs)
        checks.append((rows, threading.current_thread() is transport.thread))
        if rows > 1000 and len(checks) == 4:  # the large request's shadow copy
            time.sleep(LOOP_BUDGET_S * 1.2)
        return real_check(schema, inputs)

    monkeypatch.setattr(InputSchema, "check", slow_check)
    options: dict[str, Any] = {"prediction_log": spool, "project": ctx.project, "metrics": metrics}
    xs = [0.0, 3.0] * 4000
    body = [{"x": x} for x in xs]
    with serving(ctx, ["toy-prod"], **options) as (client, _):
        transport = cast(AppTransport, client._transport)
        small = client.post("/predict", json=[{"x": 0.0}])
        assert small.status_code == 200
        logged = 'loopwise_shadow_requests_total{deployment="toy-prod",result="logged",version="2"}'
        wait_for(lambda: f"{logged} 1.0" in metrics.render()[0].decode())
        assert checks == [(1, True), (1, True)]  # live and shadow: inline, no thread hop

        beat = Heartbeat(transport.loop)
        large = client.post("/predict", json=body)
        assert large.status_code == 200 and large.json()["version"] == 1
        assert len(large.request.content) > INLINE_PARSE_BYTES
        wait_for(lambda: f"{logged} 2.0" in metrics.render()[0].decode())
        held_s = beat.stop()
        assert held_s < LOOP_BUDGET_S, f"the event loop was held for {held_s:.2f} s"
        assert checks[2:] == [(len(xs), False), (len(xs), False)]  # live, then the shadow copy
        request_id = large.headers["x-request-id"]
    log = read_predictions(ctx.store, ctx.project, "toy-prod")
    shadow = log[log["shadow"] & log["request_id"].str.startswith(f"{request_id}:")]
    assert len(shadow) == len(xs) and set(shadow["version"]) == {2}
    rows = shadow.assign(row=shadow["request_id"].str.rsplit(":", n=1).str[1].astype(int))
    rows = rows.sort_values("row")
    assert rows["input.x"].tolist() == xs
    answers = {0.0: LABELS[2][0], 3.0: LABELS[2][3]}  # version 2's own answers
    assert rows["output.predict"].tolist() == [answers[x] for x in xs]
