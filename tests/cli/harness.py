"""The ``loopwise`` command for CLI tests: in this process, as a fresh process would run it, or
as a real process of the installed entry point, where the process is what a test is about.

Starting ``python -m loopwise`` costs seconds of imports each time, more under coverage; the
in-process run gives the command the same start a fresh process gets (the argument list, an
environment of only ``COLUMNS`` and ``PATH``, no current Loopwise context, consoles that write
to pipes 200 columns wide) and ends as a process would (``lw.shutdown``, the exit status of
``SystemExit`` or of an uncaught exception, whose traceback goes to stderr).
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.rich_utils
from typer.testing import CliRunner

import loopwise as lw
from loopwise.cli import main
from loopwise.cli.common import State
from loopwise.cli.output import console, err_console

__all__ = ["CliResult", "cli", "cli_process"]

ENVIRONMENT = {"COLUMNS": "200", "PATH": "/usr/bin:/bin"}
"""All that the command's process sees of the environment."""

WIDTH = int(ENVIRONMENT["COLUMNS"])


@dataclass(frozen=True)
class CliResult:
    """How one run of the command ended, and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def cli(store: Path, *args: str, ok: bool = True, project: str | None = "cli") -> CliResult:
    """Run ``loopwise --uri STORE [--project PROJECT] ARGS`` in this process; assert it
    succeeds (or fails)."""
    result = run_in_process(_arguments(store, args, project))
    assert (result.returncode == 0) == ok, result.stdout + result.stderr
    return result


def cli_process(store: Path, *args: str, ok: bool = True, project: str | None = "cli") -> CliResult:
    """Run the installed ``loopwise`` script (the environment's entry point) with ``--uri STORE
    [--project PROJECT] ARGS`` as a real process; assert it succeeds (or fails)."""
    script = Path(sys.executable).with_name("loopwise")
    assert script.exists(), f"Expected the entry point at {script}: pip install -e . installs it"
    done = subprocess.run(
        [str(script), *_arguments(store, args, project)],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENVIRONMENT,
    )
    result = CliResult(done.returncode, done.stdout, done.stderr)
    assert (result.returncode == 0) == ok, result.stdout + result.stderr
    return result


def _arguments(store: Path, args: Sequence[str], project: str | None) -> list[str]:
    chosen = ["--project", project] if project is not None else []
    return ["--uri", str(store), *chosen, *args]


def run_in_process(arguments: Sequence[str]) -> CliResult:
    """``loopwise ARGUMENTS`` through the entry point's ``main``, with what a fresh process
    would start from, all of it restored afterwards."""
    with pytest.MonkeyPatch.context() as patch, CliRunner().isolation() as (stdout, stderr, _):
        _fresh_process(patch, arguments)
        try:
            returncode = _exit_status(main)
        finally:
            lw.shutdown()  # what the process's exit would run (an atexit hook)
        sys.stdout.flush()  # print() leaves text in the wrapper's buffer
        sys.stderr.flush()
        # Read before the isolation ends: it closes the streams.
        return CliResult(returncode, stdout.getvalue().decode(), stderr.getvalue().decode())


def _fresh_process(patch: pytest.MonkeyPatch, arguments: Sequence[str]) -> None:
    """Undo what earlier tests in this process left that a new process would not have."""
    lw.shutdown()
    patch.setattr(sys, "argv", ["loopwise", *arguments])  # main() reads --json from it
    for name in list(os.environ):
        patch.delenv(name, raising=False)
    for name, value in ENVIRONMENT.items():
        patch.setenv(name, value)
    patch.setattr(State, "uri", None)
    patch.setattr(State, "project", None)
    # Rich reads the terminal's size and colours when a console is made (at import, here);
    # pipes have no colours, and a test may have resized the console (monkeypatch's undo of
    # `console.width` leaves a width set).
    for shared in (console, err_console):
        patch.setattr(shared, "_width", WIDTH)
        patch.setattr(shared, "_color_system", None)
        patch.setattr(shared, "_force_terminal", None)
    # Typer reads these from the environment at import, for the consoles of its help and
    # usage errors.
    patch.setattr(typer.rich_utils, "FORCE_TERMINAL", None)
    patch.setattr(typer.rich_utils, "MAX_WIDTH", None)


def _exit_status(entry_point: Callable[[], object]) -> int:
    """Call ``entry_point`` and answer the exit status Python would give its process."""
    try:
        entry_point()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except Exception:  # an uncaught exception: its traceback, exit status 1
        traceback.print_exc()
        return 1
    return 0
