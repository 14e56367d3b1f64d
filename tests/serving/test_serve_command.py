"""``loopwise serve`` as a real process on a loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

import loopwise as lw

from ..server.harness import free_port

pytestmark = pytest.mark.slow


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

    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "loopwise", "--uri", str(store), "-p", "p", "serve",
             "toy@production", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ),
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        answer = httpx.post(url + "/predict", json=[{"x": 0.0}, {"x": 3.0}]).json()
        assert answer["predictions"] == [0, 1]
        assert answer["version"] == version.version
        wrong = httpx.post(url + "/predict", json=[{"y": 1.0}])
        assert wrong.status_code == 422
        assert "'x'" in wrong.json()["error"]["message"]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


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
