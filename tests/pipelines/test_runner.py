"""Running pipelines: parallel branches, failures and resuming, what each run records, loading
outputs back, and seeds.

The local executor (worker processes) is used where the test is about processes; the rest
runs inline for speed.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

import loopwise as lw
from loopwise.context import Context
from loopwise.errors import PipelineFailedError
from loopwise.pipelines import StepEvent, StepState, run
from loopwise.pipelines.execute import read_record
from loopwise.pipelines.refs import load_pipeline

from . import flows
from .support import dataset_roles, run_script, step_runs

# -- execution ----------------------------------------------------------------------------------


def test_local_workers_run_branches_at_once_and_a_failure_spares_independent_ones(
    ctx: Context, tmp_path: Path
) -> None:
    flag, folder = tmp_path / "fail-now", tmp_path / "meet"
    flag.touch()
    folder.mkdir()
    params = {"flag": str(flag), "folder": str(folder)}
    with pytest.raises(PipelineFailedError) as caught:
        flows.branches.run(params, executor="local", workers=2)

    error = caught.value
    assert "failed in step 'fragile'" in error.message
    assert f"RuntimeError: flag file {flag} is present" in error.message
    # The worker's traceback, down to the line that raised.
    assert "Traceback (most recent call last)" in error.message
    assert 'raise RuntimeError(f"flag file {flag} is present")' in error.message
    assert error.details["skipped"] == ["double"]
    (failed,) = step_runs("fragile")
    assert error.details["failed"] == {"fragile": failed.id}
    assert failed.status is lw.RunStatus.FAILED
    assert failed.tags["loopwise.error"] == f"RuntimeError: flag file {flag} is present"
    assert step_runs("double") == []
    pipeline_run = lw.get_run(error.details["run_id"])
    assert pipeline_run.status is lw.RunStatus.FAILED

    # Both rendezvous steps returned, so each saw the other running; the store says so too.
    (left,) = step_runs("left")
    (right,) = step_runs("right")
    assert left.status is right.status is lw.RunStatus.FINISHED
    assert left.end_ms is not None and right.end_ms is not None
    assert left.start_ms < right.end_ms and right.start_ms < left.end_ms

    # Fixed: run again (here, in this process). What the workers finished is reused.
    flag.unlink()
    again = flows.branches.run(params, executor="inline")
    assert set(again.cached) == {"numbers", "left", "right"}
    assert again.executed == ["fragile", "double"]
    assert again["left"].run_id == left.id
    assert again.output("double") == 6.0
    assert lw.get_run(again.run_id).status is lw.RunStatus.FINISHED


def test_a_failure_without_raising_reports_each_step_state_and_events(
    ctx: Context, tmp_path: Path
) -> None:
    flag = tmp_path / "fail-now"
    flag.touch()
    events: list[StepEvent] = []
    result = flows.resumable.run(
        {"flag": str(flag)}, executor="inline", raise_on_failure=False, on_event=events.append
    )
    assert result.status == "FAILED"
    assert result.failed == ["fragile"] and result.skipped == ["double"]
    assert set(result.executed) == {"numbers", "fragile", "stamp"}
    assert "RuntimeError" in (result["fragile"].traceback or "")
    states: dict[str, list[StepState]] = {e.node: [] for e in events}
    for event in events:
        states[event.node].append(event.state)
    assert states["fragile"] == [StepState.RUNNING, StepState.FAILED]
    assert states["double"] == [StepState.SKIPPED]
    assert states["numbers"] == [StepState.RUNNING, StepState.FINISHED]


def test_resume_reuses_the_params_and_the_finished_steps_even_uncached_ones(
    ctx: Context, tmp_path: Path
) -> None:
    flag = tmp_path / "fail-now"
    flag.touch()
    with pytest.raises(PipelineFailedError) as caught:
        flows.resumable.run({"flag": str(flag), "n": 5}, executor="inline", seed=7)
    failed_run = caught.value.details["run_id"]
    (stamp,) = step_runs("stamp")
    # Resumed before the fix, it fails again; then resuming that run still reuses `stamp`.
    with pytest.raises(PipelineFailedError) as caught:
        run(flows.resumable, resume=failed_run, executor="inline")
    failed_again = caught.value.details["run_id"]
    assert lw.get_run(failed_again).params == {"flag": str(flag), "n": "5"}

    flag.unlink()
    resumed = run(flows.resumable, resume=failed_again, executor="inline")
    assert resumed.params == {"flag": str(flag), "n": 5}
    assert lw.get_run(resumed.run_id).tags["loopwise.seed"] == "7"
    assert set(resumed.cached) == {"numbers", "stamp"}  # stamp has cache=False
    assert resumed["stamp"].run_id == stamp.id
    assert resumed.executed == ["fragile", "double"]
    assert resumed.output("double") == 10.0

    # Without resume, a cache=False step runs again.
    fresh = flows.resumable.run({"flag": str(flag), "n": 5}, executor="inline", seed=7)
    assert fresh.executed == ["stamp"]
    assert len(step_runs("stamp")) == 2


def test_a_script_without_a_main_guard_runs_with_worker_processes(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        """\
        import json

        import loopwise as lw

        with open("loaded.txt", "a") as f:
            f.write("loaded\\n")


        @lw.step
        def add(x: int) -> int:
            return x + 1


        @lw.step
        def times(x: int) -> int:
            return x * 3


        @lw.pipeline
        def unguarded(x: int = 1) -> None:
            times(add(x))
            add.named("other")(x + 10)


        lw.init(project="p", uri="store")
        result = unguarded.run(executor="local", workers=2)
        with open("ran.txt", "a") as f:
            f.write("ran\\n")
        print(json.dumps({"executed": sorted(result.executed), "times": result.output("times")}))
        """,
    )
    assert result == {"executed": ["add", "other", "times"], "times": 6}
    # Workers loaded the script for its steps but stopped where it runs the pipeline.
    assert (tmp_path / "ran.txt").read_text() == "ran\n"
    assert 2 <= len((tmp_path / "loaded.txt").read_text().splitlines()) <= 3
    lw.init(project="p", uri=tmp_path / "store")
    assert len(lw.search_runs("tags.`loopwise.kind` = 'pipeline'")) == 1
    assert {r.tags["loopwise.node"] for r in step_runs()} == {"add", "other", "times"}


def test_loading_a_script_for_its_pipeline_does_not_run_it(ctx: Context, tmp_path: Path) -> None:
    script = tmp_path / "unguarded_flow.py"
    script.write_text(
        "import loopwise as lw\n\n\n"
        "@lw.step\ndef one() -> int:\n    return 1\n\n\n"
        "@lw.pipeline\ndef unguarded() -> None:\n    one()\n\n\n"
        "unguarded.run(executor='inline')\n"
        "raise AssertionError('the script went on after its pipeline run')\n"
    )
    loaded = load_pipeline(f"{script}:unguarded")
    assert loaded.name == "unguarded"
    assert lw.search_runs() == []
    assert loaded.run(executor="inline").output("one") == 1


# -- records and lineage ------------------------------------------------------------------------


@pytest.fixture
def lineage_result(ctx: Context) -> lw.pipelines.PipelineResult:
    return cast("lw.pipelines.PipelineResult", flows.lineage.run({"n": 8}, executor="inline"))


def test_each_step_is_a_run_tagged_with_its_pipeline_node_and_key(
    ctx: Context, lineage_result: lw.pipelines.PipelineResult
) -> None:
    result = lineage_result
    assert set(result.executed) == {"numbers", "split", "fit", "score", "report", "rows"}
    for node, step in result.steps.items():
        stored = lw.get_run(step.run_id or "")
        assert stored.name == node
        assert stored.status is lw.RunStatus.FINISHED
        tags = stored.tags
        assert tags["loopwise.kind"] == "step"
        assert tags["loopwise.pipeline"] == "lineage"
        assert tags["loopwise.node"] == node
        assert tags["loopwise.parent"] == result.run_id
        assert tags["loopwise.step"] == f"tests.pipelines.flows:{node}"
        record = read_record(ctx.store, tags["loopwise.record"])
        assert {**record, "run_id": step.run_id} == step.record
        assert tags["loopwise.cache_key"] == record["cache_key"]
        assert tags["loopwise.seed"] == str(record["seed"])
        assert record["node"] == node and record["pipeline"] == "lineage"
        assert record["key"]["code"]["sources"]  # what the key was made of
    # A constant input is a param of the step run.
    assert lw.get_run(result["numbers"].run_id or "").params == {"n": "8"}
    split_record = result["split"].record or {}
    assert set(split_record["outputs"]) == {"train", "valid"}
    assert split_record["outputs"]["train"]["kind"] == "dataset"
    assert (
        split_record["inputs"]["frame"]["hash"]
        == ((result["numbers"].record or {})["outputs"]["output"]["hash"])
    )


def test_dataframes_are_linked_to_the_step_runs_that_read_and_wrote_them(
    ctx: Context, lineage_result: lw.pipelines.PipelineResult
) -> None:
    run_of = {node: step.run_id or "" for node, step in lineage_result.steps.items()}
    assert dataset_roles(run_of["numbers"]) == {("lineage.numbers.output", "output.output")}
    assert dataset_roles(run_of["split"]) == {
        ("lineage.numbers.output", "frame"),
        ("lineage.split.train", "output.train"),
        ("lineage.split.valid", "output.valid"),
    }
    assert dataset_roles(run_of["fit"]) == {("lineage.split.train", "train")}
    assert dataset_roles(run_of["score"]) == {("lineage.split.valid", "valid")}


def test_the_pipeline_run_has_params_record_status_and_the_steps_metrics(
    ctx: Context, lineage_result: lw.pipelines.PipelineResult
) -> None:
    result = lineage_result
    stored = lw.get_run(result.run_id)
    assert stored.name == "lineage"
    assert stored.status is lw.RunStatus.FINISHED and result.status == "FINISHED"
    assert stored.params == {"n": "8"}
    assert stored.tags["loopwise.kind"] == "pipeline"
    assert stored.tags["loopwise.pipeline"] == "lineage"
    assert stored.tags["loopwise.seed"] == "0"
    assert stored.tags["loopwise.pipeline_ref"] == f"{flows.__file__}:lineage"
    assert load_pipeline(stored.tags["loopwise.pipeline_ref"]).name == "lineage"
    assert stored.environment and "packages" in stored.environment
    record = read_record(ctx.store, stored.tags["loopwise.record"])
    assert record["params"] == {"n": 8} and record["seed"] == 0
    assert record["steps"]["fit"] == {
        "state": "finished",
        "run_id": result["fit"].run_id,
        "cache_key": (result["fit"].record or {})["cache_key"],
        "error": None,
    }
    score_mae = lw.get_run(result["score"].run_id or "").metrics["mae"]
    assert stored.metrics["score.mae"] == pytest.approx(score_mae)  # logged by the step
    assert stored.metrics["score.rows"] == 2.0  # a dict-of-numbers output
    assert stored.metrics["rows.output"] == 2.0  # a number output


def test_outputs_load_back_as_what_the_steps_returned(
    ctx: Context, lineage_result: lw.pipelines.PipelineResult
) -> None:
    result = lineage_result
    train = result.output("split", "train")
    assert isinstance(train, pd.DataFrame)
    pdt.assert_frame_equal(train, pd.DataFrame({"x": np.arange(6, dtype="int64")}))
    model = result.output("fit")
    expected = flows.fit.fn(train)  # the step called as a plain function
    grid = pd.DataFrame({"x": [-3.0, 0.0, 10.0]})
    np.testing.assert_allclose(model.predict(grid), expected.predict(grid))
    np.testing.assert_allclose(model.predict(grid), [-5.0, 1.0, 21.0])
    report = result.output("report")
    assert isinstance(report, Path) and report.read_text() == "2 rows\n"
    assert result.output("score") == {"rows": 2.0}
    assert result.output("rows") == 2
    with pytest.raises(lw.LoopwiseError, match="outputs \\['train', 'valid'\\]; name one"):
        result.output("split")


# -- seeds --------------------------------------------------------------------------------------


def test_steps_are_seeded_by_the_pipeline_seed(ctx: Context) -> None:
    first = flows.seeded.run(executor="inline", seed=3)
    second = flows.seeded.run(executor="inline", seed=3)
    other = flows.seeded.run(executor="inline", seed=4)
    assert first.executed == second.executed == other.executed == ["noise"]  # cache=False
    assert first.output("noise") == second.output("noise")
    assert other.output("noise")["numpy"] != first.output("noise")["numpy"]
    assert other.output("noise")["python"] != first.output("noise")["python"]
    recorded = {lw.get_run(r.run_id).tags["loopwise.seed"] for r in (first, second, other)}
    assert recorded == {"3", "4"}
