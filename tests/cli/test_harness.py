"""The in-process ``cli`` of ``harness.py`` prints what the installed ``loopwise`` prints in a
fresh process, whatever earlier tests left in this one."""

from __future__ import annotations

from pathlib import Path

import pytest

import loopwise as lw
from loopwise.cli.output import console, err_console

from .harness import cli, cli_process

CASES = [
    ("--help",),  # Typer's help: its own console, the width, no colours
    ("runs", "show", "0123", "--json"),  # a Loopwise error as JSON: main() reads sys.argv
    ("audit", "log"),  # a table as wide as the console
]


@pytest.mark.parametrize("args", CASES, ids=["help", "json-error", "table"])
def test_in_process_prints_what_a_fresh_process_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    store = tmp_path / "store"
    lw.init(project="cli", uri=store)
    lw.shutdown()
    fresh = cli_process(store, *args, ok="--json" not in args)
    # What earlier tests may leave in this process: a project and a width in the environment,
    # a resized console, a current context on another store.
    monkeypatch.setenv("LOOPWISE_PROJECT", "elsewhere")
    monkeypatch.setenv("COLUMNS", "60")
    for shared in (console, err_console):
        monkeypatch.setattr(shared, "_width", 60)
    lw.init(project="other", uri=tmp_path / "other")
    here = cli(store, *args, ok="--json" not in args)
    assert here == fresh
