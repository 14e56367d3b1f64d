"""The demo: the main job of ``make demo``, on the bundled ACS data; its training is the
pipeline in ``loopwise.examples.training_pipeline``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

import loopwise as lw
from loopwise.errors import ValidationFailedError
from loopwise.examples import ACS_FEATURES, load_acs
from loopwise.examples.demo import run_demo
from loopwise.examples.demo_autopilot import BUG_WINDOW, SHOCK_WINDOW, START
from loopwise.examples.demo_monitoring import run_monitoring
from loopwise.examples.training_pipeline import (
    SEED,
    employment_training,
    sample_years,
    validate,
)
from loopwise.store import Run, RunStatus
from loopwise.store.predictions import read_predictions

STEPS = {
    "load",
    "load-holdout",
    "validate",
    "split",
    "train-logistic-regression",
    "train-gradient-boosting",
    "evaluate-logistic-regression",
    "evaluate-gradient-boosting",
    "register",
}


def _window_start(index: int) -> int:
    """When replay window ``index`` of the autopilot act begins (a window is a day)."""
    return int(START.value // 1_000_000) + index * 86_400_000


def _step_runs(pipeline_run: str) -> dict[str, Run]:
    found = [r for r in lw.search_runs() if r.tags.get("loopwise.parent") == pipeline_run]
    return {r.tags["loopwise.node"]: r for r in found}


@pytest.mark.slow(seconds=80)  # a process pool (workers=2) training 4 candidates
def test_quick_demo_registers_the_best_candidate(tmp_path: Path) -> None:
    quiet = Console(file=io.StringIO())
    summary = run_demo(uri=str(tmp_path / "store"), quick=True, console=quiet, workers=2)
    output = quiet.file.getvalue()  # type: ignore[attr-defined]
    assert "employment@production" in output
    assert summary["pipeline_run"][:8] in output and summary["cached"] == []
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

    # The third act: the autopilot leaves real drift alone, recovers from the shock, and
    # escalates the data bug in its window without retraining on it.
    autopilot = summary["autopilot"]
    assert autopilot["deployment"] == "employment-prod"  # a fresh store: the first name
    decisions = lw.autopilot.history("employment-prod")
    retrains = [d for d in decisions if d.kind == "retrain"]
    assert retrains and min(d.at_ms for d in retrains) > _window_start(SHOCK_WINDOW)
    assert autopilot["promotions"] >= 1 and autopilot["retrains"] <= 12
    assert autopilot["bug_escalated_in_window"] == BUG_WINDOW
    assert not [d for d in retrains if d.at_ms > _window_start(BUG_WINDOW)]
    accuracy = autopilot["mean_accuracy"]
    assert accuracy["autopilot"] > accuracy["static 2015 model"]
    assert Path(autopilot["report"]).stat().st_size > 100_000

    # The training was a pipeline run: one finished run per step, linked to it.
    pipeline_run = lw.get_run(summary["pipeline_run"])
    assert pipeline_run.tags["loopwise.kind"] == "pipeline"
    assert pipeline_run.status is RunStatus.FINISHED
    steps = _step_runs(pipeline_run.id)
    assert set(steps) == STEPS
    assert all(r.status is RunStatus.FINISHED for r in steps.values())
    assert production.run_id == steps["register"].id
    # The candidates trained side by side in worker processes, not one after the other.
    first, second = steps["train-logistic-regression"], steps["train-gradient-boosting"]
    assert first.end_ms is not None and second.end_ms is not None
    assert first.start_ms < second.end_ms and second.start_ms < first.end_ms
    assert steps["train-gradient-boosting"].metrics["fit_s"] > 0
    # Validation accuracy by slice, on the evaluate steps' runs and in the summary.
    for kind in candidates:
        metrics = steps[f"evaluate-{kind}"].metrics
        for sex in ("1", "2"):
            assert 0.6 < metrics[f"slice/SEX:{sex}/accuracy"] < 1
            assert metrics[f"slice/SEX:{sex}/rows"] > 300
        assert any(key.startswith("slice/RAC1P:") for key in metrics)
    assert set(summary["slices"]) >= {"SEX=1", "SEX=2", "RAC1P=1"}
    assert (
        summary["slices"]["SEX=1"]["accuracy"]
        == steps[f"evaluate-{best}"].metrics["slice/SEX:1/accuracy"]
    )

    # Run again on the same store: every step is reused, no model version is added (the
    # versions after the first are the autopilot's retrained ones).
    registered = [v.version for v in lw.models.versions("employment")]
    assert registered[0] == summary["version"]
    again = employment_training.run({"quick": True, "seed": SEED}, seed=SEED, workers=2)
    assert sorted(again.cached) == sorted(STEPS) and again.executed == []
    assert again.run_id != pipeline_run.id
    assert again.output("register").version == summary["version"]
    assert [v.version for v in lw.models.versions("employment")] == registered
    assert _step_runs(again.run_id) == {}  # a cached step runs nothing, so logs no run

    # The monitoring act again on the same store: nothing is logged twice, the same is found.
    store = lw.context.current().store
    logged = read_predictions(store, "employment", "employment")
    data = sample_years(load_acs(), True, SEED)
    rerun = run_monitoring(data, load_acs([2015]), True, quiet, "employment")
    assert len(read_predictions(store, "employment", "employment")) == len(logged)
    assert logged["request_id"].is_unique
    first = summary["monitoring"]["periods"]
    assert {k: v["rows"] for k, v in rerun["periods"].items()} == {
        k: v["rows"] for k, v in first.items()
    }
    assert rerun["periods"]["2016"]["accuracy"] == first["2016"]["accuracy"]


def test_validate_step_refuses_a_holdout_unlike_the_training_data(tmp_path: Path) -> None:
    lw.init(project="employment", uri=tmp_path / "store")
    data = sample_years(load_acs([2015, 2016]), True, SEED)
    train = lw.log_dataset(data[data["year"] == 2015], name="acs-ma-2015", split="train")
    holdout = data[data["year"] == 2016]
    fine = lw.log_dataset(holdout, name="acs-ma-2016", split="holdout")
    assert validate(train, fine) == (train, fine)  # a step called outside a pipeline: the function
    broken = lw.log_dataset(holdout.assign(AGEP=holdout["AGEP"] * 12), name="acs-ma-2016")
    with pytest.raises(ValidationFailedError, match="AGEP") as caught:
        validate(train, broken)
    assert "acs-ma-2016/2" in caught.value.message
    assert {f["column"] for f in caught.value.details["findings"]} == {"AGEP"}
