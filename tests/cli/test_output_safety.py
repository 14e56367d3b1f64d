"""Stored text reaches the terminal as text: no escape sequence is obeyed, no markup styled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopwise.cli.output import clean, safe
from loopwise.store import open_store

from .harness import cli

HOSTILE = "\x1b]0;owned\x07[red]evil[/]\x1b[2J\r\u202eexe.txt"


def test_clean_shows_control_characters_as_escapes() -> None:
    assert clean(HOSTILE) == "\\x1b]0;owned\\x07[red]evil[/]\\x1b[2J\\x0d\\u202eexe.txt"
    assert clean("tab\tand\nnewline stay, ünïcode too") == "tab\tand\nnewline stay, ünïcode too"
    assert safe("[red]evil[/] \x9b") == "\\[red]evil\\[/] \\x9b"


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, str]:
    """A store with a run whose name, param and tag are hostile text; and the run's id."""
    path = tmp_path / "store"
    store = open_store(path)
    store.get_or_create_project("cli")
    run = store.create_run("cli", HOSTILE, tags={"note": HOSTILE})
    store.log_params(run.id, {"model": HOSTILE})
    store.close()
    return path, run.id


def test_runs_list_and_show_print_stored_text_inertly(stored: tuple[Path, str]) -> None:
    path, run_id = stored
    listed = cli(path, "runs", "list").stdout
    shown = cli(path, "runs", "show", run_id).stdout
    for out in (listed, shown):
        assert "\x1b" not in out and "\x07" not in out and "\r" not in out
        assert "\u202e" not in out
        assert "\\x1b]0;owned\\x07[red]evil[/]" in out  # literally, markup and all
    assert shown.count("[red]evil[/]") == 3  # the name, the param and the tag


# Markup that would colour, hide or link text, and an escape that would clear the screen.
MARKUP = "[red]x[/red] [link=file:///etc/passwd]see[/link] \x1b[2Jdone"
SHOWN = "[red]x[/red] [link=file:///etc/passwd]see[/link] \\x1b[2Jdone"
DIGEST = "sha256:" + "ab" * 32


def _inert(out: str) -> None:
    assert "\x1b" not in out, out
    assert SHOWN in out, out


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, int]:
    """Free text an editor can store, hostile in every field the CLI prints in a message: a
    model version's description, a deployment's reason, an alert's rule, an autopilot pause.
    Returns the store and the alert's id."""
    from loopwise.store import TrafficPlan

    path = tmp_path / "store"
    store = open_store(path)
    store.get_or_create_project("cli")
    store.create_model_version(
        "cli", "employment", flavour="sklearn", artifact_digest=DIGEST, description=MARKUP
    )
    store.create_deployment("cli", "prod", "employment", TrafficPlan({1: 100}), reason=MARKUP)
    alert, _ = store.raise_alert(
        "cli", deployment="prod", rule=MARKUP, severity="warning", fingerprint="f",
        message=MARKUP,
    )  # fmt: skip
    store.record_autopilot_decision(
        "cli", "prod", 1, "escalate", MARKUP, {"phase": "paused", "paused_reason": MARKUP}, {}, 0
    )
    store.close()
    return path, alert.id


def test_messages_print_stored_text_inertly(hostile: tuple[Path, int]) -> None:
    path, alert_id = hostile
    _inert(cli(path, "models", "show", "employment/1").stdout)
    _inert(cli(path, "deploy", "status", "prod").stdout)
    _inert(cli(path, "monitor", "alerts").stdout)
    _inert(cli(path, "monitor", "resolve", str(alert_id)).stdout)
    _inert(cli(path, "autopilot", "status", "prod").stdout)
    _inert(cli(path, "autopilot", "resume", "prod", "--reason", MARKUP).stdout)


def test_a_tampered_audit_record_is_named_inertly(tmp_path: Path) -> None:
    """Whoever can write the store's file chooses the repeated key that verify quotes."""
    import sqlite3

    path = tmp_path / "store"
    store = open_store(path)
    store.get_or_create_project("cli")
    store.close()
    key = json.dumps(MARKUP)
    db = sqlite3.connect(path / "loopwise.db")
    try:
        with db:
            db.execute(f"UPDATE audit_log SET after = '{{{key}: 1, {key}: 2}}' WHERE seq = 1")
    finally:
        db.close()
    broken = cli(path, "audit", "verify", ok=False, project=None)
    assert "\x1b" not in broken.stderr
    assert "[red]x[/red] [link=file:///etc/passwd]see[/link]" in broken.stderr


def test_monitor_status_prints_alerts_inertly(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An alert's message quotes served inputs (column names, values): anyone who can reach
    the inference server writes them."""
    import pandas as pd

    from loopwise.cli import monitor as monitor_cli
    from loopwise.cli import output
    from loopwise.monitoring import MonitorReport

    monkeypatch.setattr(output.console, "width", 200)
    empty = pd.DataFrame(
        columns=["window_start", "column", "rule", "drifted", "skewed", "severity"]
    )
    report = MonitorReport(
        "cli", "prod", 0, 1, "1D", 0, "nothing", empty, empty, empty, empty, empty, empty,
        alerts=[{"rule": MARKUP, "severity": "warning", "message": MARKUP}],
    )  # fmt: skip
    monitor_cli._print_status(report)
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert f"warning {SHOWN}: {SHOWN}" in out


def test_pipeline_runs_list_params_once_escaped(tmp_path: Path) -> None:
    """Table cells are made safe by the table: escaping them before showed a stray backslash."""
    path = tmp_path / "store"
    store = open_store(path)
    store.get_or_create_project("cli")
    tags = {"loopwise.kind": "pipeline", "loopwise.pipeline": "training"}
    run = store.create_run("cli", "training", tags=tags)
    store.log_params(run.id, {"columns": "[age]", "note": MARKUP})
    store.close()
    out = cli(path, "pipeline", "list").stdout
    assert "columns=[age]" in out and "\\[age]" not in out
    assert "\x1b" not in out
