"""``loopwise autopilot``: set-policy, policy, run-once, status, history and resume as a user runs
them, and a real ``run-once`` process killed in the middle of a retrain and run again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner, Result

import loopwise as lw
from loopwise.cli import app
from loopwise.errors import ConflictError, InvalidArgumentError, NotFoundError
from loopwise.store import open_store

from ..autopilot.world import (
    DAY_MS,
    DEPLOYMENT,
    FEATURES,
    PIPELINE,
    START_MS,
    World,
    policy_text,
    window_rows,
)
from .harness import cli

DIGEST = "sha256:" + "ab" * 32


def invoke(store: Path, *args: str, ok: bool = True) -> Result:
    """``loopwise --uri STORE --project cli autopilot ARGS`` in-process; assert it succeeds (or
    fails)."""
    result = CliRunner().invoke(
        app, ["--uri", str(store), "--project", "cli", "autopilot", *args], env={"COLUMNS": "200"}
    )
    assert (result.exit_code == 0) == ok, result.output + repr(result.exception)
    return result


def iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()


def serve(world: World, index: int) -> None:
    """Window ``index``'s traffic served and labelled as ``World.play`` does, without ticking:
    the tick at the window's end is left to the command under test."""
    frame = window_rows(index, world.rows, change=world.change, task=world.task)
    start = START_MS + index * DAY_MS
    stamps = np.linspace(start, start + DAY_MS - 1, len(frame)).astype(np.int64)
    ids = [f"w{index}-{i}" for i in range(len(frame))]
    world.replayer.serve(frame[FEATURES], ids, stamps)
    lw.log_outcomes(DEPLOYMENT, ids, frame["y"].tolist())


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[Path]:
    """A store with deployment 'plain' of model 'm' and no policy (project 'cli')."""
    path = tmp_path / "store"
    lw.init(project="cli", uri=path)
    store = lw.context.current().store
    store.create_model_version("cli", "m", flavour="python", artifact_digest=DIGEST)
    lw.deployments.create("plain", "m", 1)
    lw.shutdown()
    yield path
    lw.shutdown()


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The synthetic world after two quiet windows: decisions start, observe, observe."""
    path = tmp_path_factory.mktemp("played") / "store"
    lw.init(project="cli", uri=path)
    try:
        world = World(change=100)
        world.setup()
        world.play(range(0, 2))
        assert world.kinds() == ["start", "observe", "observe"]
    finally:
        lw.shutdown()
    yield path


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Path, World]]:
    """The synthetic world switched on (decision 'start') in a fresh store, context open."""
    path = tmp_path / "store"
    lw.init(project="cli", uri=path)
    world = World(change=1)
    world.setup()
    yield path, world
    lw.shutdown()


# -- set-policy and policy -----------------------------------------------------------------------


def test_set_policy_from_a_file_prints_the_revision(deployed: Path, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text())
    out = invoke(deployed, "set-policy", "plain", str(path)).output
    assert "plain: autopilot policy revision 1 is in force." in out
    path.write_text(policy_text(monitor={"window": "2D"}))
    stored = json.loads(invoke(deployed, "set-policy", "plain", str(path), "--json").output)
    assert stored["revision"] == 2 and stored["text"] == path.read_text()
    stale = invoke(deployed, "set-policy", "plain", str(path), "--expected-revision", "1", ok=False)
    assert isinstance(stale.exception, ConflictError)


def test_an_invalid_policy_file_is_refused_naming_the_field(deployed: Path, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(rollout={"steps": [5, 25]}))
    result = invoke(deployed, "set-policy", "plain", str(path), ok=False)
    assert isinstance(result.exception, InvalidArgumentError)
    assert result.exception.details["parameter"] == "rollout.steps"
    assert "rollout.steps" in result.exception.message
    store = open_store(deployed)
    try:
        with pytest.raises(NotFoundError):  # nothing stored
            store.get_autopilot_policy("cli", "plain")
    finally:
        store.close()


def test_the_error_reaches_the_user_of_the_real_command(deployed: Path, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(monitor={"alpha": 0.7}))
    result = cli(deployed, "autopilot", "set-policy", "plain", str(path), ok=False)
    assert result.returncode == 1
    assert "Error: monitor.alpha: expected a number in (0.0, 0.5], got 0.7." in result.stderr


def test_a_missing_policy_file_is_a_clear_error(deployed: Path, tmp_path: Path) -> None:
    result = invoke(deployed, "set-policy", "plain", str(tmp_path / "nope.yaml"), ok=False)
    assert isinstance(result.exception, InvalidArgumentError)
    assert "No policy file at" in result.exception.message
    assert "nope.yaml" in result.exception.message


def test_policy_shows_the_text_and_the_settings_in_force(played: Path) -> None:
    out = invoke(played, "policy", DEPLOYMENT).output
    assert f"{DEPLOYMENT}: policy revision 1, set by" in out
    assert "min_labelled: 150" in out  # the text as set
    assert "In force, defaults included:" in out
    assert "monitor: window=1D, min_labelled=150, max_drop=0.02, alpha=0.05" in out
    assert "escalation: after_failed_candidates=2, webhook=None" in out
    shown = json.loads(invoke(played, "policy", DEPLOYMENT, "--json").output)
    assert shown["policy"]["revision"] == 1
    assert shown["settings"]["label"] == "y"
    assert shown["settings"]["rollout"]["steps"] == [20, 100]
    assert shown["settings"]["gates"]["min_improvement"] == 0.0  # a default
    missing = invoke(played, "policy", DEPLOYMENT, "--revision", "7", ok=False)
    assert isinstance(missing.exception, NotFoundError)


# -- run-once ------------------------------------------------------------------------------------


def test_run_once_prints_the_decisions_it_took(world: tuple[Path, World]) -> None:
    path, synthetic = world
    serve(synthetic, 0)
    lw.shutdown()
    end_of_window = iso(START_MS + DAY_MS)
    out = invoke(path, "run-once", DEPLOYMENT, "--now", end_of_window).output
    assert f"{DEPLOYMENT} #2 observe: realised accuracy" in out
    assert "no action" in out
    again = invoke(path, "run-once", DEPLOYMENT, "--now", end_of_window).output
    assert again.strip() == f"{DEPLOYMENT}: nothing to do yet."
    ticks = json.loads(
        invoke(path, "run-once", DEPLOYMENT, "--now", end_of_window, "--json").output
    )
    assert ticks == [{"deployment": DEPLOYMENT, "decisions": []}]
    lw.init(project="cli", uri=path)
    assert [d.kind for d in lw.autopilot.history(DEPLOYMENT)] == ["start", "observe"]
    assert lw.autopilot.history(DEPLOYMENT)[-1].at_ms == START_MS + DAY_MS


def test_run_once_without_names_ticks_every_deployment_with_a_policy(
    world: tuple[Path, World],
) -> None:
    path, synthetic = world
    lw.deployments.create("no-policy", "synthetic", 1)
    serve(synthetic, 0)
    lw.shutdown()
    out = invoke(path, "run-once", "--now", iso(START_MS + DAY_MS), "--json").output
    ticks = json.loads(out)
    assert [t["deployment"] for t in ticks] == [DEPLOYMENT]
    assert [d["kind"] for d in ticks[0]["decisions"]] == ["observe"]
    lw.init(project="cli", uri=path)
    assert lw.autopilot.history("no-policy") == []
    assert lw.autopilot.state("no-policy") is None


def test_run_once_without_any_policy_says_so(deployed: Path) -> None:
    out = invoke(deployed, "run-once", "--now", iso(START_MS)).output
    assert "No deployment has an autopilot policy" in out


def test_run_once_of_a_deployment_without_a_policy_is_not_found(deployed: Path) -> None:
    result = invoke(deployed, "run-once", "plain", ok=False)
    assert isinstance(result.exception, NotFoundError)


@pytest.mark.parametrize("now", ["yesterday", "2026-13-45T10:00Z", ""])
def test_an_invalid_now_is_a_clear_error(deployed: Path, now: str) -> None:
    result = invoke(deployed, "run-once", "plain", "--now", now, ok=False)
    assert isinstance(result.exception, InvalidArgumentError)
    assert result.exception.details["parameter"] == "--now"
    assert "ISO 8601" in result.exception.message and repr(now) in result.exception.message


# -- status, history, resume ---------------------------------------------------------------------


def test_status_shows_what_the_autopilot_believes(played: Path) -> None:
    out = invoke(played, "status", DEPLOYMENT).output
    assert f"Autopilot of {DEPLOYMENT}" in out
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in out.splitlines() if line.count("│") == 3}  # fmt: skip
    assert rows["phase"] == "watching" and rows["production"] == "1"
    assert rows["metric"] == "accuracy"
    assert rows["baseline"].startswith("0.9") and "first check" in rows["baseline"]
    state = json.loads(invoke(played, "status", DEPLOYMENT, "--json").output)
    assert state["phase"] == "watching" and state["production"] == 1
    assert state["last_check_ms"] == START_MS + 2 * DAY_MS


def test_status_before_the_first_tick(deployed: Path) -> None:
    out = invoke(deployed, "status", "plain").output
    assert "plain: the autopilot has not run yet" in out
    assert json.loads(invoke(deployed, "status", "plain", "--json").output) is None


def test_history_hides_the_quiet_checks_unless_asked(played: Path) -> None:
    out = invoke(played, "history", DEPLOYMENT).output
    assert f"Autopilot of {DEPLOYMENT}: 1 of 3 decisions (--all for the quiet checks)" in out
    assert "start" in out and "observe" not in out
    everything = invoke(played, "history", DEPLOYMENT, "--all").output
    assert f"Autopilot of {DEPLOYMENT}: 3 of 3 decisions" in everything
    assert everything.count("observe") == 2
    quiet = json.loads(invoke(played, "history", DEPLOYMENT, "--json").output)
    assert [d["kind"] for d in quiet] == ["start"]
    decisions = json.loads(invoke(played, "history", DEPLOYMENT, "--all", "--json").output)
    assert [d["seq"] for d in decisions] == [1, 2, 3]
    assert [d["kind"] for d in decisions] == ["start", "observe", "observe"]
    check = decisions[1]["evidence"]
    assert check["metric"] == "accuracy" and check["policy_revision"] == 1
    assert check["check"]["labelled"] == 600 and check["drop"]["triggered"] is False
    assert decisions[1]["state"]["baseline"] == check["baseline"]["value"]


def test_resume_when_not_paused_is_an_error(played: Path) -> None:
    result = invoke(played, "resume", DEPLOYMENT, "--reason", "looked at it", ok=False)
    assert isinstance(result.exception, ConflictError)
    assert "is not paused; nothing to resume" in result.exception.message
    blank = invoke(played, "resume", DEPLOYMENT, "--reason", " ", ok=False)
    assert isinstance(blank.exception, InvalidArgumentError)
    missing_reason = invoke(played, "resume", DEPLOYMENT, ok=False)
    assert missing_reason.exit_code == 2 and "--reason" in missing_reason.output


# -- a real process, killed mid-retrain ----------------------------------------------------------


def loopwise(store: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m loopwise --uri STORE --project cli ARGS`` in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "loopwise", "--uri", str(store), "--project", "cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "COLUMNS": "200",
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/"),
            **env,
        },
    )


def test_a_run_once_killed_before_the_pipeline_finishes_the_retrain_once(
    world: tuple[Path, World],
) -> None:
    # The change comes at window 1: the check at its end retrains. Window 0 is played (and
    # checked) here; window 1 is served, and its closing tick is a real process.
    path, synthetic = world
    synthetic.play(range(0, 1))
    serve(synthetic, 1)
    assert synthetic.kinds() == ["start", "observe"]
    lw.shutdown()
    command = ("autopilot", "run-once", DEPLOYMENT, "--now", iso(START_MS + 2 * DAY_MS),
               "--allow-pipelines", PIPELINE)  # fmt: skip

    killed = loopwise(path, *command, LOOPWISE_AUTOPILOT_KILL_AT="retrain:before-pipeline")
    assert killed.returncode == 137, killed.stdout + killed.stderr
    lw.init(project="cli", uri=path)
    assert synthetic.kinds() == ["start", "observe", "retrain"]  # announced, then killed
    assert [v.version for v in lw.models.versions("synthetic")] == [1]
    assert lw.deployments.get(DEPLOYMENT).plan.shares == {1: 100}
    lw.shutdown()

    finished = loopwise(path, *command)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert f"{DEPLOYMENT} #4 rollout: Version 2 passed its gates" in finished.stdout
    lw.init(project="cli", uri=path)
    assert synthetic.kinds() == ["start", "observe", "retrain", "rollout"]
    assert [v.version for v in lw.models.versions("synthetic")] == [1, 2]
    deployment = lw.deployments.get(DEPLOYMENT)
    assert deployment.plan.shares == {1: 80, 2: 20}
    assert [c.plan.shares for c in lw.deployments.history(DEPLOYMENT)] == [
        {1: 100},
        {1: 80, 2: 20},
    ]
    lw.shutdown()

    # Run again at the same moment: the canary has no traffic yet, nothing more happens.
    again = loopwise(path, *command)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"{DEPLOYMENT}: nothing to do yet."
