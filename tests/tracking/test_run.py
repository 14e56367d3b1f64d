"""Runs through the SDK: statuses, params, metrics, artifacts, environment."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest

import loopwise as lw
from loopwise.context import Context
from loopwise.errors import ConflictError, InvalidArgumentError, NotFoundError
from loopwise.tracking.environment import capture_environment, git_state


def test_context_manager_finishes_or_fails_the_run(ctx: Context) -> None:
    with lw.start_run(name="ok") as run:
        run.log_metric("x", 1.0)
    assert lw.get_run(run.id).status == lw.RunStatus.FINISHED
    assert lw.get_run(run.id).end_ms is not None

    with pytest.raises(RuntimeError), lw.start_run(name="boom") as failing:
        raise RuntimeError("training blew up")
    assert lw.get_run(failing.id).status == lw.RunStatus.FAILED


def test_steps_count_per_key_when_not_given(ctx: Context) -> None:
    with lw.start_run() as run:
        for value in (3.0, 2.0, 1.0):
            run.log_metric("loss", value)
        run.log_metric("acc", 0.5)
        run.log_metric("loss", 0.5, step=10)
        run.log_metric("loss", 0.25)
    history = lw.metric_history(run.id, "loss")
    assert [(m.step, m.value) for m in history] == [
        (0, 3.0),
        (1, 2.0),
        (2, 1.0),
        (10, 0.5),
        (11, 0.25),
    ]
    assert lw.get_run(run.id).metrics == {"loss": 0.25, "acc": 0.5}


def test_nan_and_infinity_are_stored_as_they_are(ctx: Context) -> None:
    with lw.start_run() as run:
        run.log_metrics({"nan": math.nan, "inf": math.inf, "neg": -math.inf})
    metrics = lw.get_run(run.id).metrics
    assert math.isnan(metrics["nan"])
    assert metrics["inf"] == math.inf
    assert metrics["neg"] == -math.inf


@pytest.mark.parametrize("bad", ["0.5", None, [1.0], True, {"v": 1}])
def test_non_numeric_metric_is_refused_at_the_call(ctx: Context, bad: object) -> None:
    with lw.start_run() as run:
        with pytest.raises(InvalidArgumentError, match="Expected a number for metric 'loss'"):
            run.log_metric("loss", bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="metric key"):
            run.log_metric("", 1.0)
    assert lw.get_run(run.id).metrics == {}


def test_params_are_write_once(ctx: Context) -> None:
    with lw.start_run() as run:
        run.log_params({"lr": 0.1, "depth": 6})
        run.log_param("lr", 0.1)  # the same value again is fine
        with pytest.raises(ConflictError, match="already '0.1'"):
            run.log_param("lr", 0.2)
    assert lw.get_run(run.id).params == {"lr": "0.1", "depth": "6"}


def test_unknown_run_id_names_it(ctx: Context) -> None:
    with pytest.raises(NotFoundError, match="No run with id 'nope'"):
        lw.get_run("nope")


def test_artifacts_files_and_folders_round_trip(ctx: Context, tmp_path: Path) -> None:
    report = tmp_path / "report.txt"
    report.write_text("hello")
    folder = tmp_path / "plots"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.png").write_bytes(b"\x89PNG fake")
    (folder / "sub" / "b.csv").write_text("x,y\n1,2\n")
    with lw.start_run() as run:
        run.log_artifact(report)
        run.log_artifact(folder, "figures")
    paths = [a.path for a in ctx.store.list_artifacts(run.id)]
    assert paths == ["figures/a.png", "figures/sub/b.csv", "report.txt"]
    out = ctx.store.download_artifacts(run.id, "figures", tmp_path / "out")
    assert (out / "sub" / "b.csv").read_text() == "x,y\n1,2\n"
    with pytest.raises(InvalidArgumentError, match="'..'"):
        run.log_artifact(report, "../escape")


def test_environment_is_captured(ctx: Context) -> None:
    with lw.start_run() as run:
        pass
    env = lw.get_run(run.id).environment
    assert env is not None
    assert env["python"].count(".") == 2
    assert "pandas" in env["packages"]
    assert env["host"]
    assert lw.start_run(capture_env=False).info.environment == {}


def test_git_state_reports_commit_and_dirty_flag(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True
        ).stdout

    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    (tmp_path / "train.py").write_text("print(1)\n")
    git("add", ".")
    git("commit", "-qm", "first")
    clean = git_state(tmp_path)
    assert clean is not None
    assert clean["commit"] == git("rev-parse", "HEAD").strip()
    assert clean["dirty"] is False and clean["diff_sha256"] is None
    (tmp_path / "train.py").write_text("print(2)\n")
    dirty = git_state(tmp_path)
    assert dirty is not None and dirty["dirty"] is True and dirty["diff_sha256"]


def test_capture_environment_outside_git_has_no_git(tmp_path: Path) -> None:
    assert capture_environment(tmp_path / "train.py")["git"] is None


def test_a_bad_value_in_a_batch_keeps_none_of_it(ctx: Context) -> None:
    with lw.start_run() as run:
        run.log_metric("loss", 1.0)
        with pytest.raises(InvalidArgumentError, match="metric 'acc'"):
            run.log_metrics({"loss": 0.5, "acc": "high"})  # type: ignore[dict-item]
        with pytest.raises(InvalidArgumentError, match="metric key"):
            run.log_metric(["not", "a", "key"], 1.0)  # type: ignore[arg-type]
        run.log_metric("loss", 0.25)
    assert [(m.step, m.value) for m in lw.metric_history(run.id, "loss")] == [(0, 1.0), (1, 0.25)]
    assert lw.get_run(run.id).metrics == {"loss": 0.25}
