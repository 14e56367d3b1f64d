"""Many processes writing into one SQLite store at once lose nothing and never see a lock error."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from loopwise.store import RunStatus, open_store

WORKERS = 8
RUNS_PER_WORKER = 4
PARAMS_PER_RUN = 5
SYNC_CALLS, SYNC_PER_CALL = 10, 2
ASYNC_VALUES = 100

WORKER = textwrap.dedent(
    """
    import os, sys, time
    from loopwise.store import MetricEntry, RunStatus, open_store

    folder, go, worker = sys.argv[1], sys.argv[2], int(sys.argv[3])
    runs, params, sync_calls, sync_per_call, async_values = map(int, sys.argv[4:9])
    print("ready", flush=True)
    while not os.path.exists(go):  # start together: every worker opens the new store at once
        time.sleep(0.001)
    store = open_store(folder)
    store.get_or_create_project("conc")
    for r in range(runs):
        run = store.create_run("conc", f"w{worker}-r{r}", tags={"worker": str(worker)})
        store.log_params(run.id, {f"p{i}": f"{worker}.{r}.{i}" for i in range(params)})
        store.set_tags(run.id, {"round": str(r)})
        for c in range(sync_calls):
            store.log_metrics([
                MetricEntry(run.id, "sync", float(c * sync_per_call + k), c * sync_per_call + k, 0)
                for k in range(sync_per_call)
            ])
        for i in range(async_values):
            store.log_metric_async(MetricEntry(run.id, "async", i / 4, i, 0))
        store.end_run(run.id, RunStatus.FINISHED)
    store.close()
    print("done", flush=True)
    """
)


def test_parallel_writers_lose_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "store"  # does not exist yet: the workers race to create it
    go = tmp_path / "go"
    counts = [RUNS_PER_WORKER, PARAMS_PER_RUN, SYNC_CALLS, SYNC_PER_CALL, ASYNC_VALUES]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(folder), str(go), str(w), *map(str, counts)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for w in range(WORKERS)
    ]
    reports: list[tuple[int, str, str]] = []
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline() == "ready\n"
        go.touch()
        deadline = time.monotonic() + 120
        for worker in workers:
            out, err = worker.communicate(timeout=max(1.0, deadline - time.monotonic()))
            reports.append((worker.returncode, out, err))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()

    for w, (returncode, out, err) in enumerate(reports):
        assert "locked" not in err, f"worker {w} saw a lock error:\n{err}"
        assert returncode == 0 and out == "done\n", f"worker {w} failed:\n{err}"
        assert err == "", f"worker {w} reported problems:\n{err}"

    store = open_store(folder)
    try:
        runs = store.search_runs("conc", max_results=10_000)
        expected_names = {f"w{w}-r{r}" for w in range(WORKERS) for r in range(RUNS_PER_WORKER)}
        assert sorted(run.name for run in runs) == sorted(expected_names)
        sync_values = SYNC_CALLS * SYNC_PER_CALL
        total_params = total_values = 0
        for run in runs:
            w, r = (int(part[1:]) for part in run.name.split("-"))
            assert run.status is RunStatus.FINISHED
            assert run.params == {f"p{i}": f"{w}.{r}.{i}" for i in range(PARAMS_PER_RUN)}
            assert run.tags == {"worker": str(w), "round": str(r)}
            assert run.metrics == {"sync": sync_values - 1.0, "async": (ASYNC_VALUES - 1) / 4}
            sync = store.get_metric_history(run.id, "sync")
            assert [m.value for m in sync] == [float(i) for i in range(sync_values)]
            history = store.get_metric_history(run.id, "async")
            assert [m.value for m in history] == [i / 4 for i in range(ASYNC_VALUES)]
            total_params += len(run.params)
            total_values += len(sync) + len(history)
        assert total_params == WORKERS * RUNS_PER_WORKER * PARAMS_PER_RUN
        assert total_values == WORKERS * RUNS_PER_WORKER * (sync_values + ASYNC_VALUES)
        assert [p.name for p in store.list_projects()] == ["conc"]
    finally:
        store.close()
