"""The Ray executor on a local Ray with 2 CPUs: results, caching, failures, lineage."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import loopwise as lw
from loopwise.errors import PipelineFailedError
from loopwise.pipelines import StepState
from tests.pipelines import ray_flows
from tests.ray_harness import ray_local


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    with ray_local():
        yield


def test_ray_runs_every_branch_and_the_cache_reuses_them(
    local_ray: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A relative store path: Ray workers started in another folder must still find the store.
    monkeypatch.chdir(tmp_path)
    lw.init(project="ray", uri="store")
    result = ray_flows.fan_out.run({"base": 3}, executor="ray")
    assert result.status == "FINISHED"
    assert result.output("combine") == 3 * (1 + 2 + 3 + 4)
    assert sorted(result.executed) == sorted(
        ["seed_value", "combine", *(f"branch-{f}" for f in (1, 2, 3, 4))]
    )
    # The branches ran in Ray worker processes, not in this one.
    pids = {result.output(f"branch-{f}")["pid"] for f in (1, 2, 3, 4)}
    assert os.getpid() not in pids
    run = lw.get_run(result.steps["branch-2"].run_id)
    assert run.metrics["factor"] == 2.0 and run.tags["loopwise.parent"] == result.run_id

    again = ray_flows.fan_out.run({"base": 3}, executor="ray")
    assert again.executed == [] and len(again.cached) == 6

    changed = ray_flows.fan_out.run({"base": 4}, executor="ray")
    assert len(changed.executed) == 6 and changed.output("combine") == 40


def test_a_failing_step_on_ray_names_the_step_and_lets_the_other_branch_finish(
    local_ray: None, tmp_path: Path
) -> None:
    lw.init(project="ray", uri=tmp_path / "store")
    with pytest.raises(PipelineFailedError) as caught:
        ray_flows.partly_broken.run(executor="ray")
    message = str(caught.value)
    assert "'explode'" in message and "value 1 is too large for this step" in message
    assert "Traceback" in message and "ray_flows.py" in message
    run_id = caught.value.details["run_id"]
    record = lw.get_run(run_id)
    assert record.status.value == "FAILED"
    finished = lw.search_runs("tags.`loopwise.node` = 'branch' and status = 'FINISHED'")
    assert len(finished) == 1 and finished[0].tags["loopwise.parent"] == run_id
    failed = lw.search_runs("tags.`loopwise.node` = 'explode'")
    assert failed[0].status.value == "FAILED"
    assert "too large" in failed[0].tags["loopwise.error"]


def test_states_are_reported_as_events(local_ray: None, tmp_path: Path) -> None:
    lw.init(project="ray", uri=tmp_path / "store")
    events: list[tuple[str, StepState]] = []
    ray_flows.fan_out.run(executor="ray", on_event=lambda e: events.append((e.node, e.state)))
    for node in ("seed_value", "branch-1", "combine"):
        states = [state for name, state in events if name == node]
        assert states == [StepState.RUNNING, StepState.FINISHED]
