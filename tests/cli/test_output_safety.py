"""Stored text reaches the terminal as text: no escape sequence is obeyed, no markup styled."""

from __future__ import annotations

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
