"""``loopwise pipeline``: run, resume, show, sweep and list, each as a fresh process would run
them (in this process, see ``harness.py``) on a real store, with the small pipelines of
``pipeline_flows.py``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .harness import cli

FLOWS = Path(__file__).with_name("pipeline_flows.py")
FLOW = f"{FLOWS}:flow"
STEPS = ("load", "split", "fit", "evaluate")


def step_runs(out: str, state: str) -> dict[str, str]:
    """{step: short run id} from the lines ``step NAME finished in … (run ID)``."""
    pattern = rf"^step (\S+) {state}\b.*run ([0-9a-f]{{8}})\)"
    return dict(re.findall(pattern, out, flags=re.MULTILINE))


@pytest.mark.e2e  # the local executor starts worker processes
def test_run_prints_each_step_then_reuses_what_did_not_change(tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = cli(store, "pipeline", "run", FLOW, "--executor", "inline").stdout
    executed = step_runs(first, "finished")
    assert list(executed) == list(STEPS)
    assert "4 executed, 0 cached, 0 failed, 0 skipped" in first
    run_id = re.search(
        rf"loopwise --uri {re.escape(str(store))} -p cli runs show ([0-9a-f]{{32}})", first
    )
    assert run_id is not None and f"loopwise --uri {store} -p cli pipeline show {FLOW}" in first
    shown = json.loads(cli(store, "runs", "show", run_id.group(1), "--json").stdout)
    assert shown["run"]["tags"]["loopwise.kind"] == "pipeline"

    # A changed param re-runs the steps that read it and those after; the local executor.
    second = cli(store, "pipeline", "run", FLOW, "--param", "scale=2").stdout
    assert step_runs(second, "cached") == {n: executed[n] for n in ("load", "split")}
    assert list(step_runs(second, "finished")) == ["fit", "evaluate"]
    assert "2 executed, 2 cached" in second

    again = json.loads(
        cli(store, "pipeline", "run", FLOW, "--param", "scale=2", "-e", "inline", "--json").stdout
    )
    assert again["status"] == "FINISHED" and again["params"]["scale"] == 2
    assert {s["state"] for s in again["steps"].values()} == {"cached"}
    assert list(again["steps"]) == list(STEPS)


def test_failed_step_exits_1_with_its_traceback_then_resume_completes(tmp_path: Path) -> None:
    store, flag = tmp_path / "store", tmp_path / "flag"
    failed = cli(
        store, "pipeline", "run", FLOW, "-e", "inline", "--param", f"flag={flag}", ok=False
    )
    assert failed.returncode == 1
    assert "step evaluate failed" in failed.stdout and "1 failed" in failed.stdout
    assert "failed in step 'evaluate'" in failed.stderr
    assert "Traceback (most recent call last)" in failed.stderr
    assert f"RuntimeError: the flag file {flag} does not exist yet" in failed.stderr
    hint = re.search(r"loopwise pipeline resume ([0-9a-f]{32})", failed.stderr)
    assert hint is not None

    flag.touch()
    resumed = cli(store, "pipeline", "resume", hint.group(1)[:10], "-e", "inline").stdout
    assert list(step_runs(resumed, "cached")) == ["load", "split", "fit"]
    assert list(step_runs(resumed, "finished")) == ["evaluate"]
    assert "1 executed, 3 cached, 0 failed" in resumed

    runs = json.loads(cli(store, "pipeline", "list", "--json").stdout)
    assert [r["status"] for r in runs] == ["FINISHED", "FAILED"]
    assert runs[0]["params"]["flag"] == str(flag)  # the resumed run kept the params
    listed = cli(store, "pipeline", "list").stdout
    assert runs[0]["id"][:8] in listed and runs[1]["id"][:8] in listed


def test_show_prints_the_dag_as_text_mermaid_dot_and_json(tmp_path: Path) -> None:
    store = tmp_path / "store"
    text = cli(store, "pipeline", "show", FLOW, "--param", "n=3").stdout
    assert text.index("\nload") < text.index("\nsplit") < text.index("\nevaluate")
    assert "n: int = 3" in text
    assert "data: list[int] from load.output" in text and "frac: float = 0.25" in text
    assert "model: float from fit.output" in text and "out  train: list[int]" in text

    mermaid = cli(store, "pipeline", "show", FLOW, "--format", "mermaid").stdout
    assert mermaid.startswith("flowchart LR")
    assert '["evaluate"]' in mermaid and mermaid.count("-->") == 4

    dot = cli(store, "pipeline", "show", FLOW, "--format", "dot").stdout
    assert dot.startswith('digraph "flow"')
    assert '"split" -> "fit" [label="train"];' in dot
    assert '"split" -> "evaluate" [label="valid"];' in dot

    shown = json.loads(cli(store, "pipeline", "show", FLOW, "--json").stdout)
    assert [s["name"] for s in shown["steps"]] == list(STEPS)
    assert shown["steps"][1]["inputs"]["data"] == {"type": "list[int]", "from": "load.output"}
    assert shown["steps"][1]["inputs"]["frac"] == {"type": "float", "value": 0.25}
    assert {(e["from"], e["to"]) for e in shown["edges"]} == {
        ("load", "split"),
        ("split", "fit"),
        ("split", "evaluate"),
        ("fit", "evaluate"),
    }


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["show", f"{FLOWS}:looped"], ["cycle", "first -> second -> first"]),
        (["show", f"{FLOWS}:mistyped"], ["Input 'x' of step 'halve'", "step 'load'"]),
        (["run", FLOW, "--param", "bogus=1"], ["does not declare a param 'bogus'"]),
        (["run", FLOW, "--param", "n=abc"], ["Param 'n'", "expects int", "'abc'"]),
        (["run", FLOW, "--param", "n"], ["Expected --param key=value, got 'n'"]),
        (["run", str(FLOWS.with_name("missing.py")) + ":flow"], ["No Python file at"]),
        (["run", str(FLOWS)], ["Expected a pipeline reference like"]),
        (["run", FLOW, "--executor", "fast"], ["'fast' is not one of"]),
        (["sweep", FLOW, "-e", "inline"], ["needs the values to try"]),
    ],
)
def test_bad_input_is_one_clear_message(
    tmp_path: Path, args: list[str], expected: list[str]
) -> None:
    result = cli(tmp_path / "store", "pipeline", *args, ok=False)
    message = " ".join((result.stdout + result.stderr).split())  # undo rich's line wrapping
    for fragment in expected:
        assert fragment in message
    assert "Traceback" not in message
    assert "step load" not in result.stdout  # rejected before any step ran


def test_sweep_runs_each_point_then_compare_and_list(tmp_path: Path) -> None:
    store = tmp_path / "store"
    out = cli(
        store, "pipeline", "sweep", FLOW, "--grid", "scale=0.5,2", "-e", "inline",
        "--metric", "evaluate.score",
    ).stdout  # fmt: skip
    assert "2 point(s)" in out
    # load and split do not read scale: they run once for both points.
    assert list(step_runs(out, "finished")).count("load") == 1
    assert "fit (point 2)" in out
    rows = re.findall(r"│ (★?) *│ ([0-9a-f]{8}) │ FINISHED │ ([\d.]+) ", out)
    assert rows == [("★", rows[0][1], "2.0"), ("", rows[1][1], "0.5")]  # best score first
    hint = re.search(
        rf"Compare: (loopwise --uri {re.escape(str(store))} -p cli runs compare [0-9a-f ]+)", out
    )
    assert hint is not None
    compared = json.loads(cli(store, *hint.group(1).split()[1:], "--json").stdout)
    assert len(compared) == 2 and all(any(r[1] in col for col in compared) for r in rows)
    assert {col["params.scale"] for col in compared.values()} == {"0.5", "2.0"}

    drawn = json.loads(
        cli(
            store, "pipeline", "sweep", FLOW, "--random", "n=choice(8,12)", "--samples", "2",
            "--param", "scale=3", "-e", "inline", "--json",
        ).stdout
    )  # fmt: skip
    assert len(drawn["points"]) == 2
    for point in drawn["points"]:
        assert point["params"]["n"] in (8, 12) and point["params"]["scale"] == 3
        assert "evaluate.score" in point["metrics"]

    listed = json.loads(cli(store, "pipeline", "list", "--json").stdout)
    assert len(listed) == 4
    assert len({r["tags"]["loopwise.sweep"] for r in listed}) == 2
