"""Many processes writing into one SQLite store at once lose nothing and never see a lock error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from loopwise.store import RunStatus, open_store

WORKERS = 8
RUNS_PER_WORKER = 4
PARAMS_PER_RUN = 5
SYNC_CALLS, SYNC_PER_CALL = 10, 2
ASYNC_VALUES = 100

# One process imports the store's backend once and forks the workers (a fresh interpreter for
# each would import it eight times, most of this test's time): each worker is still a process
# of its own that opens its own connections, after the fork.
LAUNCHER = textwrap.dedent(
    """
    import os, sys, traceback
    import loopwise.store.sql  # what open_store imports: once, before the workers fork
    from loopwise.store import MetricEntry, RunStatus, open_store

    folder, reports, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    runs, params, sync_calls, sync_per_call, async_values = map(int, sys.argv[4:9])

    def work(worker):
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

    def worker_process(worker, go):
        for fd, kind in ((1, "out"), (2, "err")):
            os.dup2(os.open(f"{reports}/{worker}.{kind}", os.O_WRONLY | os.O_CREAT), fd)
        code = 1
        try:
            os.read(go, 1)  # start together: every worker opens the new store at once
            work(worker)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)  # not the launcher's exit handlers

    go, release = os.pipe()
    pids = []
    for worker in range(workers):
        pid = os.fork()
        if pid == 0:
            worker_process(worker, go)
        pids.append(pid)
    os.write(release, b"x" * workers)
    for worker, pid in enumerate(pids):
        print(worker, os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
    """
)


def run_workers(folder: Path, reports: Path) -> list[tuple[int, str, str]]:
    """Each worker's exit status, stdout and stderr."""
    counts = [RUNS_PER_WORKER, PARAMS_PER_RUN, SYNC_CALLS, SYNC_PER_CALL, ASYNC_VALUES]
    reports.mkdir()
    args = [str(folder), str(reports), str(WORKERS), *map(str, counts)]
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=reports,
        start_new_session=True,  # its own process group: the workers are killed with it
    )
    try:
        out, err = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.communicate()
    assert launcher.returncode == 0 and err == "", f"the launcher failed:\n{err}"
    codes = dict(line.split() for line in out.splitlines())
    return [
        (int(codes[str(w)]), (reports / f"{w}.out").read_text(), (reports / f"{w}.err").read_text())
        for w in range(WORKERS)
    ]


def test_parallel_writers_lose_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "store"  # does not exist yet: the workers race to create it
    reports = run_workers(folder, tmp_path / "workers")
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
