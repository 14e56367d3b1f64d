"""The servers under test in the server benchmark: Loopwise's and MLflow's tracking servers.

Each ``Target`` makes a fresh store (a SQLite file or a new PostgreSQL database), starts the
server as its own process group on a loopback port, kills it with SIGKILL when the load is over
(nothing gets a chance to flush), then counts the metric values its store holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

HOST = "127.0.0.1"
PROJECT = "bench"  # Loopwise project, and MLflow experiment name
LOG_TAIL_CHARS = 3000


class TargetError(RuntimeError):
    """The server could not be set up or started; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def log_tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
    except OSError:
        return ""


class Target:
    """One server on one fresh store. Subclasses say how to create, start and count."""

    system = ""

    def __init__(self, folder: Path, db_url: str | None, env: dict[str, str]) -> None:
        self.folder = folder
        self.db_url = db_url  # None: SQLite in ``folder``
        self.env = env
        self.port = 0
        self.token = ""
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.folder / "server.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Create the store before the server starts (untimed)."""

    def start(self, timeout_s: float) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.prepare()
        self.port = free_port()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.folder,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # one process group: workers die with it
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TargetError(
                    f"{self.system} server exited with status {self.process.returncode} before "
                    f"answering. Its log ends:\n{log_tail(self.log_path)}"
                )
            try:
                if httpx.get(self.url + "/health", timeout=2).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.kill()
        raise TargetError(
            f"{self.system} server did not answer /health within {timeout_s:.0f} s. "
            f"Its log ends:\n{log_tail(self.log_path)}"
        )

    def kill(self) -> None:
        """SIGKILL the whole process group: acknowledged writes must survive this."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def stored_values(self, run_ids: Sequence[str], keys: Sequence[str]) -> dict[str, int]:
        raise NotImplementedError


class LoopwiseTarget(Target):
    """``loopwise --uri STORE server`` (one process), authenticated with an admin token."""

    system = "loopwise"

    @property
    def uri(self) -> str:
        return self.db_url or str(self.folder / "store")

    def _loopwise(self, *args: str) -> str:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "loopwise"), "--uri", self.uri, *args],
            capture_output=True,
            text=True,
            env=self.env,
        )
        if done.returncode != 0:
            raise TargetError(f"loopwise {' '.join(args)} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def prepare(self) -> None:
        init = f"import loopwise as lw; lw.init(project={PROJECT!r}, uri={self.uri!r})"
        done = subprocess.run(
            [sys.executable, "-c", init], capture_output=True, text=True, env=self.env
        )
        if done.returncode != 0:
            raise TargetError(f"Creating the Loopwise store failed:\n{done.stderr[-2000:]}")
        self.token = json.loads(self._loopwise("token", "create", "--role", "admin", "--json"))[
            "secret"
        ]

    def command(self) -> list[str]:
        return [
            str(Path(sys.executable).parent / "loopwise"),
            "--uri",
            self.uri,
            "server",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--log-level",
            "warning",  # no access log, as for MLflow
        ]

    def stored_values(self, run_ids: Sequence[str], keys: Sequence[str]) -> dict[str, int]:
        """Through the store's own ``get_metric_history``, opened here after the kill."""
        from loopwise.store import open_store

        saved = os.environ.get("LOOPWISE_ARTIFACTS")
        os.environ["LOOPWISE_ARTIFACTS"] = self.env.get("LOOPWISE_ARTIFACTS", "")
        try:
            store = open_store(self.uri)
        finally:
            if saved is None:
                os.environ.pop("LOOPWISE_ARTIFACTS", None)
            else:
                os.environ["LOOPWISE_ARTIFACTS"] = saved
        try:
            return {r: sum(len(store.get_metric_history(r, k)) for k in keys) for r in run_ids}
        finally:
            store.close()


class MlflowTarget(Target):
    """``mlflow server`` with its defaults (uvicorn, 4 workers) minus the access log."""

    system = "mlflow"

    def __init__(
        self,
        folder: Path,
        db_url: str | None,
        env: dict[str, str],
        venv: Path,
        workers: int | None,
    ) -> None:
        super().__init__(folder, db_url, env)
        self.venv = venv
        self.workers = workers
        self.env = {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"}

    @property
    def backend_uri(self) -> str:
        return self.db_url or f"sqlite:///{self.folder / 'mlflow.db'}"

    def command(self) -> list[str]:
        command = [
            str(self.venv / "bin" / "mlflow"),
            "server",
            "--backend-store-uri",
            self.backend_uri,
            "--default-artifact-root",
            str(self.folder / "artifacts"),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--uvicorn-opts",
            "--no-access-log",
        ]
        if self.workers:
            command += ["--workers", str(self.workers)]
        return command

    def stored_values(self, run_ids: Sequence[str], keys: Sequence[str]) -> dict[str, int]:
        """Rows in MLflow's ``metrics`` table (one per logged value), read after the kill."""
        marks = ", ".join("?" for _ in run_ids)
        query = f"SELECT run_uuid, COUNT(*) FROM metrics WHERE run_uuid IN ({marks}) GROUP BY 1"
        if self.db_url is None:
            with sqlite3.connect(self.folder / "mlflow.db") as conn:
                rows = conn.execute(query, list(run_ids)).fetchall()
        else:
            import psycopg

            dsn = self.db_url.replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(dsn) as conn:
                rows = conn.execute(query.replace("?", "%s").encode(), list(run_ids)).fetchall()
        counted = {str(run): int(n) for run, n in rows}
        return {r: counted.get(r, 0) for r in run_ids}


def mlflow_has_psycopg(venv: Path, env: dict[str, str]) -> str | None:
    """None when MLflow's environment can talk to PostgreSQL; else why not (after one install)."""
    python = str(venv / "bin" / "python")
    probe = [python, "-c", "import psycopg"]
    if subprocess.run(probe, capture_output=True, env=env).returncode == 0:
        return None
    pip = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "psycopg[binary]"],
        capture_output=True,
        text=True,
        env=env,
    )
    if pip.returncode != 0:
        return f"pip install psycopg[binary] into {venv} failed: {pip.stderr[-500:]}"
    if subprocess.run(probe, capture_output=True, env=env).returncode != 0:
        return f"psycopg does not import in {venv} even after installing it"
    return None
