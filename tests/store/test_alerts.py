"""Alert deduplication across processes: several processes raising one alert at once make one.

The conformance suite raises from threads of one store; here each raiser is its own process
with its own store and connections, as monitors on several machines would be.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from loopwise.store import open_store

from ..services import PostgresServer

RAISER = """
import sys
from loopwise.store import open_store

store = open_store(sys.argv[1])
sys.stdin.readline()  # start together
created = 0
for i in range(int(sys.argv[2])):
    _, new = store.raise_alert(
        "proj", deployment="churn", rule="drift", severity="warning",
        fingerprint="drift/churn/AGEP", message=f"raise {i}",
    )
    created += new
store.close()
print(created)
"""


def _raise_from_processes(uri: str, tmp_path: Path, processes: int, repeats: int) -> list[int]:
    env = {**os.environ, "LOOPWISE_ARTIFACTS": str(tmp_path / "artifacts")}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", RAISER, uri, str(repeats)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(processes)
    ]
    for w in workers:
        assert w.stdin is not None
        w.stdin.write("go\n")
        w.stdin.flush()
    results = []
    for w in workers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        results.append(int(out))
    return results


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_processes_raising_one_alert_make_one(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend == "sqlite":
        uri = str(tmp_path / "store")
    else:
        postgres: PostgresServer = request.getfixturevalue("postgres")
        uri = postgres.create_database()
        monkeypatch.setenv("LOOPWISE_ARTIFACTS", str(tmp_path / "artifacts"))
    store = open_store(uri)
    store.get_or_create_project("proj")
    processes, repeats = 3, 15
    created = _raise_from_processes(uri, tmp_path, processes, repeats)
    alerts = store.list_alerts("proj", status=None)
    store.close()
    assert sum(created) == 1
    assert len(alerts) == 1
    assert alerts[0].occurrences == processes * repeats
