"""Logged metric values survive the process: a normal exit, and SIGKILL right after the call."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import loopwise as lw

CHILD = textwrap.dedent(
    """
    import sys, time
    import loopwise as lw
    lw.init(project="durable", uri=sys.argv[1])
    run = lw.start_run(name="victim")
    print(run.id, flush=True)
    for i in range(int(sys.argv[2])):
        run.log_metric("loss", 1.0 / (i + 1), step=i)
    print("logged", flush=True)
    if sys.argv[3] == "hang":
        time.sleep(600)
    """
)


def _child(store: Path, count: int, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store), str(count), mode],
        stdout=subprocess.PIPE,
        text=True,
    )


def test_values_survive_sigkill_after_the_call_returned(tmp_path: Path) -> None:
    store = tmp_path / "store"
    child = _child(store, 20_000, "hang")
    assert child.stdout is not None
    run_id = child.stdout.readline().strip()
    assert child.stdout.readline().strip() == "logged"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()

    lw.init(project="durable", uri=store)
    history = lw.metric_history(run_id, "loss")
    assert len(history) == 20_000
    assert [m.step for m in history] == list(range(20_000))
    assert history[-1].value == 1.0 / 20_000
    assert lw.get_run(run_id).metrics["loss"] == 1.0 / 20_000


def test_values_are_written_on_normal_exit_and_the_run_finishes(tmp_path: Path) -> None:
    store = tmp_path / "store"
    child = _child(store, 5_000, "exit")
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0
    run_id = out.split()[0]
    assert not list((store / "spool").glob("*.spool")), "a clean exit leaves no spool behind"
    lw.init(project="durable", uri=store)
    assert len(lw.metric_history(run_id, "loss")) == 5_000
    assert lw.get_run(run_id).status == lw.RunStatus.FINISHED
