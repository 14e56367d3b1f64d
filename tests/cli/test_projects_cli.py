"""``loopwise projects`` and the project a command uses when none is named: the store's only
project, else the one last named on the store, else 'default'; errors and hints that name the
command line's fixes and carry ``--uri`` and ``-p`` (in-process, issue 19 items 7 and 8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import loopwise as lw
from loopwise.errors import InvalidArgumentError, NotFoundError

ENVIRONMENT: dict[str, str | None] = {"LOOPWISE_PROJECT": None, "LOOPWISE_URI": None}
"""The store and project come from the arguments only."""


def loopwise(store: Path, *args: str, ok: bool = True) -> Result:
    """``loopwise --uri STORE ARGS`` in this process, as a fresh process would start it."""
    from loopwise.cli import app

    lw.shutdown()
    result = CliRunner().invoke(app, ["--uri", str(store), *args], env=ENVIRONMENT)
    lw.shutdown()
    assert (result.exit_code == 0) == ok, result.output + repr(result.exception)
    return result


def run_names(result: Result) -> list[str]:
    return [run["name"] for run in json.loads(result.stdout)]


def make_store(path: Path, *projects: str) -> Path:
    """A folder store with these projects, each with one run named after it."""
    for project in projects:
        lw.init(project=project, uri=path)
        with lw.start_run(name=f"run-in-{project}"):
            pass
    lw.shutdown()
    return path


def test_the_only_project_needs_no_p(tmp_path: Path) -> None:
    store = make_store(tmp_path / "store", "employment")  # what `make demo` leaves
    assert run_names(loopwise(store, "runs", "list", "--json")) == ["run-in-employment"]
    loopwise(store, "models", "list")


def test_the_project_last_named_is_used_until_another_is_named(tmp_path: Path) -> None:
    store = make_store(tmp_path / "store", "a", "b")
    assert run_names(loopwise(store, "-p", "b", "runs", "list", "--json")) == ["run-in-b"]
    assert run_names(loopwise(store, "runs", "list", "--json")) == ["run-in-b"]
    loopwise(store, "-p", "a", "runs", "list")
    assert run_names(loopwise(store, "runs", "list", "--json")) == ["run-in-a"]
    # A name that does not exist is not remembered.
    loopwise(store, "-p", "typo", "runs", "list", ok=False)
    assert run_names(loopwise(store, "runs", "list", "--json")) == ["run-in-a"]


def test_unknown_project_names_the_existing_ones_and_command_line_fixes(tmp_path: Path) -> None:
    store = make_store(tmp_path / "store", "a", "b")
    for args in (["runs", "list"], ["-p", "typo", "runs", "list"]):
        error = loopwise(store, *args, ok=False).exception
        assert isinstance(error, NotFoundError)
        wanted = "typo" if "typo" in args else "default"
        assert f"No project named {wanted!r}. Existing projects: 'a', 'b'." in error.message
        assert "-p NAME" in error.message and "LOOPWISE_PROJECT=NAME" in error.message
        assert f"loopwise --uri {store} projects create {wanted}" in error.message
        assert "lw.init" not in error.message


def test_hints_carry_the_store_and_project(tmp_path: Path) -> None:
    store = make_store(tmp_path / "store", "a", "b")
    hint = f"(loopwise --uri {store} -p b autopilot set-policy DEPLOYMENT POLICY.yaml)"
    out = loopwise(store, "-p", "b", "autopilot", "run-once").stdout
    assert hint in " ".join(out.split())
    out = loopwise(store, "autopilot", "run-once").stdout  # b, remembered
    assert hint in " ".join(out.split())


def test_projects_create_then_list(tmp_path: Path) -> None:
    store = tmp_path / "new-store"
    out = loopwise(store, "projects", "create", "demo").stdout
    assert "Created project demo." in out
    assert f"Next: loopwise --uri {store} -p demo runs list" in out
    out = loopwise(store, "projects", "create", "demo").stdout
    assert "Project demo exists already" in out and "nothing changed" in out
    created = json.loads(loopwise(store, "projects", "create", "churn", "--json").stdout)
    assert (created["name"], created["new"]) == ("churn", True)
    again = json.loads(loopwise(store, "projects", "create", "churn", "--json").stdout)
    assert (again["new"], again["created_ms"]) == (False, created["created_ms"])
    listed = json.loads(loopwise(store, "projects", "list", "--json").stdout)
    assert [(p["name"], p["models"], p["deployments"]) for p in listed] == [
        ("churn", 0, 0),
        ("demo", 0, 0),
    ]
    assert all(isinstance(p["created_ms"], int) for p in listed)
    assert "2 project(s)" in loopwise(store, "projects", "list").stdout
    # A token for a project made here (it failed on a new store without a way to create one).
    token = json.loads(
        loopwise(store, "token", "create", "--role", "viewer", "--project", "demo", "--json").stdout
    )
    assert token["token"]["project"] == "demo"


@pytest.mark.parametrize("name", ["has space", "x" * 201, "a/b"])
def test_projects_create_refuses_a_bad_name(tmp_path: Path, name: str) -> None:
    error = loopwise(tmp_path / "store", "projects", "create", name, ok=False).exception
    assert isinstance(error, InvalidArgumentError)
    assert "project name of 1-200 letters" in error.message
    assert json.loads(loopwise(tmp_path / "store", "projects", "list", "--json").stdout) == []


def test_projects_list_of_no_store_creates_none(tmp_path: Path) -> None:
    loopwise(tmp_path / "absent", "projects", "list", ok=False)
    assert not (tmp_path / "absent").exists()


def test_pipeline_run_without_p_writes_to_the_project_the_other_commands_read(
    tmp_path: Path,
) -> None:
    store = make_store(tmp_path / "store", "employment")
    flow = Path(__file__).with_name("pipeline_flows.py")
    loopwise(store, "pipeline", "run", f"{flow}:flow", "--executor", "inline")
    assert [
        p["name"] for p in json.loads(loopwise(store, "projects", "list", "--json").stdout)
    ] == ["employment"]  # no 'default' project was created
    names = run_names(loopwise(store, "runs", "list", "--json"))
    assert "flow" in names and "run-in-employment" in names
