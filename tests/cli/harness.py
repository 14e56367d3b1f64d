"""The real ``loopwise`` command in a fresh process, for CLI tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def cli(
    store: Path, *args: str, ok: bool = True, project: str | None = "cli"
) -> subprocess.CompletedProcess[str]:
    """Run ``loopwise --uri STORE [--project PROJECT] ARGS``; assert it succeeds (or fails)."""
    chosen = ["--project", project] if project is not None else []
    result = subprocess.run(
        [sys.executable, "-m", "loopwise", "--uri", str(store), *chosen, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert (result.returncode == 0) == ok, result.stdout + result.stderr
    return result
