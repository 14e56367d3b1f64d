"""``loopwise demo`` as ``make demo`` runs it: the whole loop in a process of its own, on the
bundled ACS data (its own file, so that pytest-xdist runs it beside ``test_demo.py``'s slow test
rather than after it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import loopwise as lw


@pytest.mark.slow(seconds=110)
def test_full_demo_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loopwise", "--uri", str(tmp_path / "store"), "demo"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "employment@production" in result.stdout
    assert "Autopilot report" in result.stdout
    lw.init(project="employment", uri=tmp_path / "store")
    assert lw.models.get("employment@production").metrics["valid_auc"] > 0.89
