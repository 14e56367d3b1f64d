"""The demo: the main job of ``make demo``, on the bundled ACS data."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

import loopwise as lw
from loopwise.examples import ACS_FEATURES, load_acs
from loopwise.examples.demo import run_demo


def test_quick_demo_registers_the_best_candidate(tmp_path: Path) -> None:
    quiet = Console(file=io.StringIO())
    summary = run_demo(uri=str(tmp_path / "store"), quick=True, console=quiet)
    assert "employment@production" in quiet.file.getvalue()  # type: ignore[attr-defined]
    candidates = summary["candidates"]
    assert set(candidates) == {"logistic-regression", "gradient-boosting"}
    best = max(candidates, key=lambda name: candidates[name]["valid_auc"])
    assert summary["best"] == best
    assert summary["accuracy_2018"] > 0.75
    production = lw.models.get("employment@production")
    assert production.version == summary["version"]
    assert production.datasets == ["acs-ma-2015/1", "acs-ma-2015-valid/1"]
    assert production.metrics["valid_auc"] == candidates[best]["valid_auc"]
    loaded = lw.models.load("employment@production")
    assert loaded.predict_proba(load_acs([2017])[ACS_FEATURES].head(10)).shape == (10, 2)
    # The second act: the years pass quietly, the broken batch is caught.
    periods = summary["monitoring"]["periods"]
    assert list(periods) == ["2016", "2017", "2018", "2018, AGEP in months"]
    for year in ("2016", "2017", "2018"):
        assert periods[year]["skewed"] == periods[year]["invalid"] == []
        assert 0.75 < periods[year]["accuracy"] < 0.9
        assert abs(periods[year]["estimated_accuracy"] - periods[year]["accuracy"]) < 0.05
    broken = periods["2018, AGEP in months"]
    assert broken["skewed"] == broken["invalid"] == ["AGEP"] and "AGEP" in broken["drifted"]
    rules = {rule for rule, _ in summary["monitoring"]["alerts"]}
    assert {"skew", "validation"} <= rules and "performance" not in rules
    assert Path(summary["monitoring"]["report"]).stat().st_size > 100_000


@pytest.mark.slow
def test_full_demo_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loopwise", "--uri", str(tmp_path / "store"), "demo"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "employment@production" in result.stdout
    lw.init(project="employment", uri=tmp_path / "store")
    assert lw.models.get("employment@production").metrics["valid_auc"] > 0.89
