"""``loopwise deploy``: create, status, set, history, rollback and list, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopwise.store import TrafficPlan, open_store

from .harness import cli

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    store = open_store(path)
    store.get_or_create_project("cli")
    for _ in range(4):
        store.create_model_version("cli", "employment", flavour="python", artifact_digest=DIGEST)
    store.close()
    return path


def test_a_canary_from_creation_to_rollback(store_path: Path) -> None:
    out = cli(store_path, "deploy", "create", "prod", "--model", "employment", "--version", "3")
    assert "Created deployment prod of model employment at revision 1: 3=100%." in out.stdout
    out = cli(store_path, "deploy", "set", "prod", "--plan", "4=5,3=95", "--reason", "canary 4")
    assert "prod → revision 2: 3=95%, 4=5% (was 3=100%)." in out.stdout
    out = cli(store_path, "deploy", "set", "prod", "--plan", "3=95,4=5", "--reason", "again")
    assert "already follows 3=95%, 4=5% (revision 2); nothing changed." in out.stdout
    cli(store_path, "deploy", "set", "prod", "--plan", "3=75,4=25", "--shadow", "2",
        "--reason", "canary 25%", "--expected-revision", "2")  # fmt: skip

    status = cli(store_path, "deploy", "status", "prod").stdout
    assert "prod: model employment, revision 3" in status
    bars = {line.split("│")[1].strip(): line for line in status.splitlines() if "│" in line}
    assert bars["3"].count("█") == 30 and bars["4"].count("█") == 10  # 40 characters = 100%
    assert "shadow" in bars["2"] and "█" not in bars["2"]
    assert "Last change: set_plan by" in status and "canary 25%" in status

    rolled = cli(store_path, "deploy", "rollback", "prod", "--reason", "errors up").stdout
    assert "Rolled prod back to revision 2's plan as revision 4: 3=95%, 4=5%" in rolled
    back = json.loads(
        cli(
            store_path, "deploy", "rollback", "prod", "--to", "1", "--reason", "start", "--json"
        ).stdout
    )
    assert (back["revision"], back["plan"]) == (5, {"shares": {"3": 100}, "shadow": []})

    history = json.loads(cli(store_path, "deploy", "history", "prod", "--json").stdout)
    assert [(c["revision"], c["kind"], c["restored_revision"]) for c in history] == [
        (1, "create", None),
        (2, "set_plan", None),
        (3, "set_plan", None),
        (4, "rollback", 2),
        (5, "rollback", 1),
    ]
    assert history[2]["plan"] == {"shares": {"3": 75, "4": 25}, "shadow": [2]}
    table = cli(store_path, "deploy", "history", "prod").stdout
    assert "rollback to 2" in table and "canary 4" in table

    store = open_store(store_path)
    try:
        assert store.get_deployment("cli", "prod").plan == TrafficPlan({3: 100})
        actions = [r.action for r in store.audit_log() if r.action.startswith("deployment.")]
        assert actions.count("deployment.rollback") == 2
    finally:
        store.close()


def test_create_with_a_plan_and_list(store_path: Path) -> None:
    made = json.loads(
        cli(
            store_path,
            "deploy",
            "create",
            "ab",
            "--model",
            "employment",
            "--plan",
            "1=50,2=50",
            "--shadow",
            "3,4",
            "--reason",
            "an A/B test",
            "--json",
        ).stdout
    )
    assert made["plan"] == {"shares": {"1": 50, "2": 50}, "shadow": [3, 4]}
    cli(store_path, "deploy", "create", "prod", "--model", "employment", "--version", "1")
    listed = json.loads(cli(store_path, "deploy", "list", "--json").stdout)
    assert [(d["name"], d["revision"]) for d in listed] == [("ab", 1), ("prod", 1)]
    table = cli(store_path, "deploy", "list").stdout
    assert "2 deployment(s)" in table and "1=50%, 2=50% (shadow 3, 4)" in table


BAD = [
    (["create", "x", "--model", "employment"], "either --version N"),
    (["create", "x", "--model", "employment", "--version", "1", "--plan", "1=100"], "both"),
    (["create", "x", "--model", "employment", "--plan", "3=90"], "got 90: add 10"),
    (["create", "x", "--model", "employment", "--plan", "3:90"], "VERSION=PERCENT pairs"),
    (["create", "x", "--model", "employment", "--plan", "3=50,3=50"], "version 3 twice"),
    (["create", "x", "--model", "employment", "--plan", "9=100"], "version 9"),
    (["create", "x", "--model", "employment", "--version", "1", "--shadow", "a"], "--shadow"),
    (["create", "x", "--model", "churn", "--version", "1"], "No model named 'churn'"),
    (["set", "prod", "--plan", "1=100", "--reason", ""], "a reason"),
    (["set", "nope", "--plan", "1=100", "--reason", "r"], "No deployment named 'nope'"),
    (["rollback", "prod", "--reason", "r"], "nothing earlier to roll back to"),
    (["rollback", "prod", "--reason", "r", "--to", "7"], "no revision 7"),
    (["set", "prod", "--plan", "2=100", "--reason", "r", "--expected-revision", "5"],
     "not the expected 5"),
]  # fmt: skip


def test_bad_input_is_one_clear_message_and_changes_nothing(store_path: Path) -> None:
    cli(store_path, "deploy", "create", "prod", "--model", "employment", "--version", "1")
    for args, message in BAD:
        out = cli(store_path, "deploy", *args, ok=False)
        assert message in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
    status = json.loads(cli(store_path, "deploy", "status", "prod", "--json").stdout)
    assert status["deployment"]["revision"] == 1
    assert status["last_change"]["kind"] == "create"


def test_help_shows_examples(store_path: Path) -> None:
    out = cli(store_path, "deploy", "--help").stdout
    assert "loopwise deploy create employment-prod --model employment --version 3" in out
    out = cli(store_path, "deploy", "set", "--help").stdout
    assert "--plan 3=75,4=25" in out and "--reason" in out
