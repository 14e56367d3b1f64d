"""The autopilot driving a live ``loopwise serve --deployment``: the whole loop, in real time.

A real server process serves the synthetic stream's deployment on a loopback port and follows
its plan from the store; this test sends each window's traffic over HTTP, logs the outcomes,
and ticks the controller at each window's end. After the change point the controller retrains,
starts a canary, judges it on the traffic the server split between the two versions, and
promotes. Windows are a few seconds of wall time (``monitor.window`` in seconds); each window's
traffic is sent well inside it, so a late tick still judges all of it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

import loopwise as lw
from loopwise.store import open_store
from loopwise.store.predictions import read_predictions

from ..serving.live import live_serve
from .world import FEATURES, PIPELINE, policy_text, window_rows

pytestmark = pytest.mark.slow(seconds=50)

DEPLOYMENT = "synth-live"
WINDOW_S = 8.0
SEND_AT_S = 2.0  # into each window: a tick up to this late still sees the whole window
ROWS = 240
CHANGE = 2  # y follows x2 instead of x1 from window 2 on
WINDOWS = 6


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    # scikit-learn is an optional extra ([sklearn]): only the tests that train need it.
    from sklearn.linear_model import LogisticRegression

    store = tmp_path / "store"
    lw.init(project="p", uri=store)
    train = pd.concat([window_rows(-i, 1000, change=CHANGE, task="classification")
                       for i in (1, 2)], ignore_index=True)  # fmt: skip
    model = LogisticRegression().fit(train[FEATURES], train["y"])
    with lw.start_run(name="first", capture_env=False) as run:
        first = run.log_model(model, name="synthetic", input_example=train[FEATURES].head(3))
    lw.deployments.create(DEPLOYMENT, "synthetic", first.version)
    policy = policy_text(
        monitor={"window": WINDOW_S, "min_labelled": 150, "validation": False},
        retrain={"pipeline": PIPELINE, "params": {"task": "classification"},
                 "window": 10 * WINDOW_S, "min_rows": 150, "cooldown": WINDOW_S},
        rollout={"strategy": "canary", "steps": [50, 100], "min_samples": 60},
    )  # fmt: skip
    lw.autopilot.set_policy(DEPLOYMENT, policy)
    lw.shutdown()
    args = ["--deployment", DEPLOYMENT, "--poll-s", "0.2", "--log-durability", "write",
            "--compute", "thread"]  # fmt: skip
    with live_serve(store, args, tmp_path / "serve.log") as url:
        lw.init(project="p", uri=store)
        try:
            yield url, store
        finally:
            lw.shutdown()


def _send(client: httpx.Client, ids: list[str], frame: pd.DataFrame) -> list[tuple[int, int, int]]:
    """Each row as its own request; ``(status, version that answered, prediction)`` per row."""

    def one(i: int) -> tuple[int, int, int]:
        body = {"dataframe_split": {"columns": FEATURES, "data": [frame.iloc[i].tolist()]}}
        headers = {"X-Request-Id": ids[i], "X-Request-Key": ids[i]}
        response = client.post("/invocations", json=body, headers=headers)
        if response.status_code != 200:
            return response.status_code, 0, -1
        version = int(response.headers["x-model-version"])
        return response.status_code, version, int(response.json()["predictions"][0])

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(len(ids))))


def _logged_versions(store: Path, ids: list[str]) -> dict[str, int]:
    """The logged version of each of ``ids``, once the server's log has drained them all."""
    deadline = time.monotonic() + 30
    while True:
        opened = open_store(store)
        try:
            frame = read_predictions(opened, "p", DEPLOYMENT)
        finally:
            opened.close()
        versions = dict(zip(frame["request_id"], frame["version"].astype(int), strict=True))
        if all(i in versions for i in ids):
            return {i: versions[i] for i in ids}
        assert time.monotonic() < deadline, f"{sum(i in versions for i in ids)} of {len(ids)}"
        time.sleep(0.2)


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def test_the_autopilot_retrains_and_rolls_out_through_a_live_server(
    live: tuple[str, Path],
) -> None:
    url, store = live
    start = time.time()
    lw.autopilot.run_once(DEPLOYMENT, now_ms=int(start * 1000))  # switched on now
    seen: list[set[int]] = []  # the versions that answered, per window
    accuracy: list[float] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for index in range(WINDOWS):
            _sleep_until(start + index * WINDOW_S + SEND_AT_S)
            frame = window_rows(index, ROWS, change=CHANGE, task="classification")
            ids = [f"w{index}-{i}" for i in range(ROWS)]
            answers = _send(client, ids, frame[FEATURES])
            assert [a[0] for a in answers] == [200] * ROWS  # none failed, swaps included
            # Every answered request is in the log once, with the version that answered it.
            versions = [a[1] for a in answers]
            assert _logged_versions(store, ids) == dict(zip(ids, versions, strict=True))
            lw.log_outcomes(DEPLOYMENT, ids, frame["y"].tolist())
            seen.append(set(versions))
            served = np.array([a[2] for a in answers])
            accuracy.append(float((served == frame["y"].to_numpy()).mean()))
            _sleep_until(start + (index + 1) * WINDOW_S)
            for _ in range(3):  # at the window's end; spare ticks do nothing
                lw.autopilot.run_once(DEPLOYMENT)
    kinds = [d.kind for d in lw.autopilot.history(DEPLOYMENT)]
    deployment = lw.deployments.get(DEPLOYMENT)
    new = max(deployment.plan.shares)
    assert "retrain" in kinds and "promote" in kinds, kinds
    assert deployment.plan.shares == {new: 100} and new > 1, deployment.plan.spec
    assert seen[: CHANGE + 1] == [{1}] * (CHANGE + 1)  # no churn before the retrain
    assert {1, new} in seen  # the canary: the live server split the traffic
    assert seen[-1] == {new}  # promoted: the server answers with the new version only
    assert accuracy[CHANGE] < 0.7 < 0.85 < accuracy[-1], accuracy
