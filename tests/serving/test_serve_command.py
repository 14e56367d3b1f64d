"""``loopwise serve`` as a real process on a loopback port."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

import loopwise as lw

from ..prometheus_harness import PrometheusServer, values
from ..server.harness import free_port
from ..services import missing_service
from .live import live_serve, wait_ready

pytestmark = pytest.mark.slow(seconds=50)

SCRAPE_INTERVAL_S = 0.5
"""Prometheus scrapes twice a second (its default here is 1 s): each query waits for fewer."""


def test_serve_loads_a_model_by_alias_and_answers(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    store = tmp_path / "store"
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    lw.init(project="p", uri=store)
    with lw.start_run(name="fit", capture_env=False) as run:
        model = LogisticRegression().fit(frame, [0, 0, 1, 1])
        version = run.log_model(model, name="toy", input_example=frame.head(2))
    lw.models.set_alias("toy", version.version, "production")
    lw.shutdown()

    with live_serve(store, ["toy@production"], tmp_path / "serve.log") as url:
        answer = httpx.post(url + "/predict", json=[{"x": 0.0}, {"x": 3.0}]).json()
        assert answer["predictions"] == [0, 1]
        assert answer["version"] == version.version
        wrong = httpx.post(url + "/predict", json=[{"y": 1.0}])
        assert wrong.status_code == 422
        assert "'x'" in wrong.json()["error"]["message"]


def test_serve_swaps_versions_under_load_and_prometheus_scrapes_it(tmp_path: Path) -> None:
    """An alias move under steady load: no request fails, the new version takes over, and a
    real Prometheus reads the server's counters back."""
    from sklearn.linear_model import LogisticRegression

    store = tmp_path / "store"
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    lw.init(project="p", uri=store)
    with lw.start_run(name="fit", capture_env=False) as run:
        first = run.log_model(
            LogisticRegression().fit(frame, [0, 0, 1, 1]), name="toy", input_example=frame
        )
        second = run.log_model(
            LogisticRegression().fit(frame, [1, 1, 0, 0]), name="toy", input_example=frame
        )
    lw.models.set_alias("toy", first.version, "production")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "loopwise", "--uri", str(store), "-p", "p", "serve",
             "toy@production", "--port", str(port), "--poll-s", "0.2"],
            stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ),
        )  # fmt: skip
    failures: list[str] = []
    versions: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            while not stop.is_set():
                response = client.post("/predict", json=[{"x": 0.0}])
                if response.status_code != 200:
                    failures.append(response.text)
                    continue
                body = response.json()
                versions.append(body["version"])
                expected = 0 if body["version"] == first.version else 1
                if body["predictions"] != [expected]:
                    failures.append(f"version {body['version']} answered {body}")

    try:
        wait_ready(process, url, log)
        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for thread in threads:
            thread.start()
        _wait_until(lambda: len(versions) >= 30, log)  # steady load before the swap
        lw.models.set_alias("toy", second.version, "production")
        _wait_until(lambda: bool(versions) and versions[-1] == second.version, log)
        swapped_at = len(versions)
        _wait_until(lambda: len(versions) > max(50, swapped_at + 10), log)  # and after it
        stop.set()
        for thread in threads:
            thread.join()
        assert not failures, failures[:5]
        switched = [i for i in range(1, len(versions)) if versions[i] != versions[i - 1]]
        assert versions[0] == first.version and versions[-1] == second.version
        assert len(versions) > 50 and switched  # steady load, and the swap happened under it

        with PrometheusServer(f"{url}/metrics", scrape_interval_s=SCRAPE_INTERVAL_S) as prometheus:
            answered = len(versions)
            result = prometheus.query(
                'sum(loopwise_requests_total{model="toy",status="200"})',
                until=lambda r: bool(r) and values(r)[0] >= answered,
            )
            assert values(result)[0] >= answered
            loads = prometheus.query('loopwise_model_version{model="toy"}')
            assert values(loads) == [float(second.version)]
    finally:
        stop.set()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    lw.shutdown()


def _wait_until(condition: Callable[[], bool], log: Path, timeout_s: float = 30) -> None:
    """Poll ``condition`` every 20 ms; fail with the server's log after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the model processes), in MiB."""
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for one in pids:
        status = Path(f"/proc/{one}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
    return total


def test_serve_survives_overload_with_503s_and_bounded_memory(tmp_path: Path) -> None:
    """wrk with far more connections than the server can answer within a 20 ms deadline: it
    refuses the excess with 503 + Retry-After, never errs otherwise, stays within memory and
    answers normally afterwards."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    wrk = shutil.which("wrk")
    if wrk is None:
        missing_service("wrk (the load generator)", "apt-get install wrk")
    assert wrk is not None
    store = tmp_path / "store"
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(2000, 8)), columns=[f"f{i}" for i in range(8)])
    labels = (frame["f0"] + frame["f1"] > 0).astype(int)
    lw.init(project="p", uri=store)
    with lw.start_run(name="fit", capture_env=False) as run:
        model = HistGradientBoostingClassifier(max_iter=100).fit(frame, labels)
        run.log_model(model, name="hgb", input_example=frame.head(3))
    lw.shutdown()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "loopwise", "--uri", str(store), "-p", "p", "serve", "hgb",
             "--port", str(port), "--slo-ms", "20", "--max-batch-rows", "16",
             "--log-level", "warning"],
            stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ),
        )  # fmt: skip
    body = json.dumps({"dataframe_split": {"columns": list(frame.columns), "data": [[0.1] * 8]}})
    script = tmp_path / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [==[{body}]==]\n"
    )
    try:
        wait_ready(process, url, log)
        baseline = _rss_mb(process.pid)
        load = subprocess.Popen(
            [wrk, "-t1", "-c256", "-d6s", "-s", str(script), url + "/invocations"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        peak = baseline
        while load.poll() is None:
            peak = max(peak, _rss_mb(process.pid))
            time.sleep(0.2)
        report = load.communicate()[0]
        assert process.poll() is None, log.read_text()
        statuses: dict[str, float] = {}
        for line in httpx.get(url + "/metrics").text.splitlines():
            if line.startswith("loopwise_requests_total{"):
                status = line.split('status="')[1].split('"')[0]
                statuses[status] = statuses.get(status, 0) + float(line.rsplit(" ", 1)[1])
        assert set(statuses) <= {"200", "503"}, (statuses, report)
        assert statuses.get("503", 0) > 0 and statuses.get("200", 0) > 0, (statuses, report)
        assert peak < baseline + 300, (baseline, peak)
        refused = httpx.post(
            url + "/invocations",
            content=body,
            headers={"Content-Type": "application/json", "X-Deadline-Ms": "0.001"},
        )
        assert refused.status_code in (200, 503)
        calm = httpx.post(
            url + "/invocations", content=body, headers={"Content-Type": "application/json"}
        )
        assert calm.status_code == 200, calm.text
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def test_every_answered_prediction_is_logged_once_across_sigkill(tmp_path: Path) -> None:
    """Clients hammer the server, which is killed with SIGKILL mid-load and started again:
    every request a client got a 200 for is in the prediction log exactly once."""
    from sklearn.linear_model import LogisticRegression

    from loopwise.store import open_store
    from loopwise.store.predictions import read_predictions

    store = tmp_path / "store"
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    lw.init(project="p", uri=store)
    with lw.start_run(name="fit", capture_env=False) as run:
        model = LogisticRegression().fit(frame, [0, 0, 1, 1])
        run.log_model(model, name="toy", input_example=frame)
    lw.shutdown()
    log = tmp_path / "serve.log"

    def start() -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        with log.open("a") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "loopwise", "--uri", str(store), "-p", "p", "serve",
                 "toy", "--port", str(port)],
                stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ),
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_ready(process, url, log)
        return process, url

    process, url = start()
    acked: list[str] = []
    stop = threading.Event()

    def client(k: int) -> None:
        n = 0
        with httpx.Client(base_url=url, timeout=5) as http:
            while not stop.is_set():
                request_id = f"c{k}-{n}"
                n += 1
                try:
                    response = http.post(
                        "/predict", json=[{"x": float(n % 4)}], headers={"X-Request-Id": request_id}
                    )
                except httpx.TransportError:
                    return  # the server is gone
                if response.status_code == 200:
                    acked.append(request_id)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acked) < 300:
        assert time.monotonic() < deadline and process.poll() is None, log.read_text()
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    stop.set()
    for thread in threads:
        thread.join()

    process, url = start()  # replays the spool the killed server left
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    opened = open_store(store)
    logged = read_predictions(opened, "p", "toy")["request_id"].tolist()
    opened.close()
    counts: dict[str, int] = {}
    for request_id in logged:
        counts[request_id] = counts.get(request_id, 0) + 1
    missing = [r for r in acked if r not in counts]
    twice = [r for r, n in counts.items() if n > 1]
    assert not missing and not twice, (len(acked), missing[:5], twice[:5])
    assert len(acked) >= 300


def test_serve_refuses_an_unknown_model(tmp_path: Path) -> None:
    store = tmp_path / "store"
    lw.init(project="p", uri=store)
    lw.shutdown()
    result = subprocess.run(
        [sys.executable, "-m", "loopwise", "--uri", str(store), "-p", "p", "serve", "nope@prod"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "nope" in result.stderr
