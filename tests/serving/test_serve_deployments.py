"""``loopwise serve --deployment`` as a real process on a loopback port.

One server serves three deployments of one model: ``toy-ab`` (versions 1 and 2, half each),
``toy-shadow`` (version 1, version 2 in shadow) and ``toy-switch``, whose plan a test changes
while clients hammer it. It computes in threads: six model processes take longer to start
than the tests take (test_shadow.py runs a deployment in model processes).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

import loopwise as lw
from loopwise.store import open_store
from loopwise.store.predictions import read_predictions

from .live import live_serve

pytestmark = pytest.mark.slow

FRAME = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
LABELS = {1: [0, 0, 1, 1], 2: [1, 1, 0, 0]}


@dataclass
class Server:
    url: str
    store: Path
    log: Path


def _logged(server: Server, deployment: str, count: int) -> pd.DataFrame:
    """The deployment's log once at least ``count`` rows drained into the store."""
    deadline = time.monotonic() + 30
    while True:
        store = open_store(server.store)
        try:
            frame = read_predictions(store, "p", deployment)
        finally:
            store.close()
        if len(frame) >= count:
            return frame
        assert time.monotonic() < deadline, (len(frame), count, server.log.read_text())
        time.sleep(0.2)


def _wait_until(condition: Callable[[], bool], server: Server, failures: list[str]) -> None:
    """Poll ``condition`` every 20 ms while no request failed; fail with the log after 30 s."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline and not failures, server.log.read_text()
        time.sleep(0.02)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("serve-deployments")
    store = folder / "store"
    lw.init(project="p", uri=store)
    with lw.start_run(name="fit", capture_env=False) as run:
        for version in (1, 2):
            model = LogisticRegression().fit(FRAME, LABELS[version])
            run.log_model(model, name="toy", input_example=FRAME)
    lw.deployments.create("toy-ab", "toy", {1: 50, 2: 50})
    lw.deployments.create("toy-shadow", "toy", lw.deployments.TrafficPlan({1: 100}, shadow=[2]))
    lw.deployments.create("toy-switch", "toy", {1: 50, 2: 50})
    lw.shutdown()

    log = folder / "serve.log"
    args = ["--deployment", "toy-ab", "--deployment", "toy-shadow", "--deployment", "toy-switch",
            "--poll-s", "0.2", "--log-durability", "write", "--compute", "thread"]  # fmt: skip
    with live_serve(store, args, log) as url:
        yield Server(url, store, log)


def test_each_key_gets_its_assigned_version_and_the_log_says_so(server: Server) -> None:
    lw.init(project="p", uri=server.store)
    deployment = lw.deployments.get("toy-ab")
    lw.shutdown()
    answered: dict[str, int] = {}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for i in range(200):
            key = f"user-{i}"
            response = client.post(
                "/predict?model=toy-ab", json=[{"x": 0.0}], headers={"X-Request-Key": key}
            )
            assert response.status_code == 200, response.text
            version = int(response.headers["x-model-version"])
            assert version == lw.deployments.assign(deployment, key) == response.json()["version"]
            assert response.json()["predictions"] == [LABELS[version][0]]
            answered[response.headers["x-request-id"]] = version
            if i % 50 == 0:  # the same key again: the same version, over another protocol
                tensor = {"name": "x", "shape": [1], "datatype": "FP64", "data": [0.0]}
                again = client.post(
                    "/v2/models/toy-ab/infer", json={"inputs": [tensor]},
                    headers={"X-Request-Key": key},
                )  # fmt: skip
                assert again.json()["model_version"] == str(version)
                answered[again.headers["x-request-id"]] = version
    assert set(answered.values()) == {1, 2}
    log = _logged(server, "toy-ab", len(answered))
    assert set(log["deployment"]) == {"toy-ab"} and set(log["model"]) == {"toy"}
    assert not log["shadow"].any()
    versions = dict(zip(log["request_id"], log["version"].astype(int), strict=True))
    assert versions == answered


def test_shadow_rows_are_logged_with_the_live_request_ids(server: Server) -> None:
    ids = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for i in range(20):
            response = client.post(
                "/predict?model=toy-shadow", json=[{"x": 3.0}], headers={"X-Request-Key": f"{i}"}
            )
            assert response.json()["version"] == 1 and response.json()["predictions"] == [1]
            ids.append(response.headers["x-request-id"])
    log = _logged(server, "toy-shadow", 2 * len(ids))
    live, shadow = log[~log["shadow"]], log[log["shadow"]]
    assert sorted(live["request_id"]) == sorted(ids) and set(live["version"]) == {1}
    assert sorted(shadow["request_id"]) == sorted(ids) and set(shadow["version"]) == {2}
    assert set(shadow["output.predict"]) == {LABELS[2][3]}  # version 2's own answers


def test_a_plan_change_under_load_fails_no_request(server: Server) -> None:
    failures: list[str] = []
    versions: list[int] = []
    stop = threading.Event()

    def hammer(k: int) -> None:
        n = 0
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not stop.is_set():
                n += 1
                response = client.post(
                    "/predict?model=toy-switch", json=[{"x": 0.0}],
                    headers={"X-Request-Key": f"c{k}-{n}"},
                )  # fmt: skip
                if response.status_code != 200:
                    failures.append(response.text)
                    continue
                version = response.json()["version"]
                versions.append(version)
                if response.json()["predictions"] != [LABELS[version][0]]:
                    failures.append(f"version {version} answered {response.text}")

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(3)]
    for thread in threads:
        thread.start()
    try:
        _wait_until(lambda: len(versions) >= 30, server, failures)  # steady load first
        lw.init(project="p", uri=server.store)
        lw.deployments.set_plan("toy-switch", {2: 100}, reason="version 2 for everyone")
        lw.shutdown()
        _wait_until(lambda: versions[-1] == 2 and 1 not in versions[-30:], server, failures)
        after = len(versions)
        _wait_until(lambda: len(versions) - after > 10, server, failures)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not failures, failures[:5]
    assert 1 in versions[:after] and set(versions[after:]) == {2}  # both, then only 2
    assert len(versions) - after > 10


def test_serve_refuses_an_unknown_deployment(tmp_path: Path) -> None:
    store = tmp_path / "store"
    lw.init(project="p", uri=store)
    lw.shutdown()
    command = [sys.executable, "-m", "loopwise", "--uri", str(store), "-p", "p", "serve"]
    unknown = subprocess.run(
        [*command, "--deployment", "nope"], capture_output=True, text=True, timeout=120
    )
    assert unknown.returncode == 1
    assert "Cannot serve deployment 'nope'" in unknown.stderr
    assert "loopwise deploy create" in unknown.stderr
    nothing = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert nothing.returncode == 1 and "--deployment" in nothing.stderr


def test_the_autopilot_reads_each_versions_requests_from_the_servers_metrics(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The autopilot's error-rate guardrail counts answers per version where the server counts
    them (``/metrics``): the counts move by what each version answered."""
    from loopwise.autopilot.rollout import serving_counts

    url = f"{server.url}/metrics"
    # On loopback: reached only because the operator allows it.
    monkeypatch.setenv("LOOPWISE_ALLOW_OUTBOUND_HOSTS", httpx.URL(url).netloc.decode())
    before = serving_counts(url, "toy")
    answered = {1: 0, 2: 0}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for i in range(60):
            response = client.post(
                "/predict?model=toy-ab", json=[{"x": 1.0}], headers={"X-Request-Key": f"m-{i}"}
            )
            assert response.status_code == 200, response.text
            answered[int(response.headers["x-model-version"])] += 1
    after = serving_counts(url, "toy")
    for version, count in answered.items():
        errors, total = after[str(version)]
        assert total - before.get(str(version), [0, 0])[1] >= count > 0
        assert errors == 0
    with pytest.raises(httpx.HTTPError):
        serving_counts(f"{server.url}/no-such-page", "toy")
