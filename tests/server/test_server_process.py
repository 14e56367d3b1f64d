"""``loopwise server`` as a real process: the SDK and CLI work through it as in embedded mode."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

import loopwise as lw
import loopwise.context as _context  # noqa: F401  (loads lw.context; the name loopwise is the CLI helper below)

from .harness import free_port, start_server

pytestmark = pytest.mark.slow


def loopwise(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopwise", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "COLUMNS": "200",
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/"),
            **(env or {}),
        },
    )


@dataclass
class Server:
    url: str
    store: Path
    admin: str
    process: subprocess.Popen[str]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    store = tmp_path_factory.mktemp("server") / "store"
    created = loopwise("--uri", str(store), "token", "create", "--role", "admin", "--json")
    assert created.returncode != 0  # no store there yet: refused, not created by a token command
    lw.init(project="bootstrap", uri=store)
    lw.shutdown()
    created = loopwise("--uri", str(store), "token", "create", "--role", "admin", "--json")
    assert created.returncode == 0, created.stderr
    admin = json.loads(created.stdout)["secret"]
    process, url = start_server(store)
    yield Server(url, store, admin, process)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)


@pytest.fixture
def remote(server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Server:
    monkeypatch.setenv("LOOPWISE_URI", server.url)
    monkeypatch.setenv("LOOPWISE_TOKEN", server.admin)
    monkeypatch.setenv("LOOPWISE_SPOOL", str(tmp_path / "spool"))
    return server


def test_the_sdk_works_through_the_server(remote: Server, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    lw.init(project="e2e")
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "y": [0, 0, 0, 1, 1, 1]})
    data = lw.log_dataset(frame, name="toy", split="train")
    assert lw.load_dataset("toy").equals(frame)
    with lw.start_run(name="lr", capture_env=False) as run:
        run.log_params({"C": 1.0})
        run.use(data)
        for step in range(50):
            run.log_metric("loss", 1 / (step + 1), step=step)
        model = LogisticRegression().fit(frame[["x"]], frame["y"])
        run.log_metric("auc", 0.99)
        (tmp_path / "notes.txt").write_text("hello")
        run.log_artifact(tmp_path / "notes.txt")
        version = run.log_model(model, name="toy-model", input_example=frame[["x"]].head(2))
    lw.models.set_alias("toy-model", version.version, "production")
    loaded = lw.models.load("toy-model@production")
    assert list(loaded.predict(pd.DataFrame({"x": [0.0, 5.0]}))) == [0, 1]
    finished = lw.search_runs("metrics.auc > 0.9")
    assert [r.name for r in finished] == ["lr"]
    assert len(lw.context.current().store.get_metric_history(run.id, "loss")) == 50
    lw.shutdown()

    # The same data, read directly from the server's store: nothing was only in the client.
    lw.init(project="e2e", uri=remote.store)
    assert lw.models.get("toy-model@production").version == version.version
    assert lw.context.current().store.get_run(run.id).metrics["auc"] == 0.99
    lw.shutdown()


def test_the_cli_works_through_the_server(remote: Server) -> None:
    env = {"LOOPWISE_URI": remote.url, "LOOPWISE_TOKEN": remote.admin}
    listed = loopwise("--project", "bootstrap", "runs", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    viewer = loopwise("token", "create", "--role", "viewer", "--json", env=env)
    assert viewer.returncode == 0, viewer.stderr
    secret = json.loads(viewer.stdout)["secret"]
    denied = loopwise("token", "create", "--role", "admin", env={**env, "LOOPWISE_TOKEN": secret})
    assert denied.returncode == 1
    assert "admin" in denied.stderr
    anonymous = loopwise("--project", "bootstrap", "runs", "list", env={"LOOPWISE_URI": remote.url})
    assert anonymous.returncode == 1
    assert "LOOPWISE_TOKEN" in anonymous.stderr
    log = loopwise("audit", "log", "--json", env=env)
    assert log.returncode == 0, log.stderr
    assert any(r["action"] == "token.create" for r in json.loads(log.stdout))
    verified = loopwise("audit", "verify", env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_metrics_of_a_killed_client_reach_the_server_once(remote: Server, tmp_path: Path) -> None:
    lw.init(project="crash")
    run_id = lw.start_run(name="doomed", capture_env=False).id
    lw.shutdown()
    script = textwrap.dedent(
        f"""
        import os, loopwise as lw
        from loopwise.store import MetricEntry
        store = lw.init(project="crash").store
        store._spool.flush_interval_s = 3600  # nothing drains before the kill
        for i in range(500):
            store.log_metric_async(MetricEntry({run_id!r}, "m", float(i), i, 1000 + i))
        os.kill(os.getpid(), 9)
        """
    )
    env = {**os.environ, "LOOPWISE_URI": remote.url, "LOOPWISE_TOKEN": remote.admin}
    killed = subprocess.run([sys.executable, "-c", script], env=env, timeout=120)
    assert killed.returncode == -9
    store = lw.init(project="crash").store  # opening replays the dead process's spool
    history = store.get_metric_history(run_id, "m")
    assert [m.value for m in history] == [float(i) for i in range(500)]
    lw.shutdown()
    store = lw.init(project="crash").store
    assert len(store.get_metric_history(run_id, "m")) == 500  # replayed once, not twice
    lw.shutdown()


def test_no_auth_is_refused_off_loopback(tmp_path: Path) -> None:
    result = loopwise("--uri", str(tmp_path / "s"), "server", "--host", "0.0.0.0", "--no-auth")
    assert result.returncode == 1
    assert "loopback" in result.stderr


def test_the_server_refuses_a_stale_schema(tmp_path: Path) -> None:
    store = tmp_path / "old"
    lw.init(project="p", uri=store)
    lw.shutdown()
    with sqlite3.connect(store / "loopwise.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    result = loopwise("--uri", str(store), "server", "--port", str(free_port()))
    assert result.returncode == 1
    assert "upgrade it with: loopwise --uri" in result.stderr and "db upgrade" in result.stderr
