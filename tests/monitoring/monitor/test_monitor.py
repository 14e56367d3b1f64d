"""The monitor end to end: a served model's log, late outcomes, an upstream bug, alerts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import loopwise as lw
from loopwise.cli import app
from loopwise.data import attach_suite, infer_suite
from loopwise.errors import InvalidArgumentError
from loopwise.examples import ACS_FEATURES, ACS_LABEL, load_acs
from loopwise.monitoring import AlertRules, list_alerts, log_outcomes, monitor
from loopwise.store.predictions import PredictionRecord, write_predictions

DAY_MS = 86_400_000
START_MS = 19_000 * DAY_MS  # 2022-01-08, midnight UTC
ROWS_PER_DAY = 600


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """2018 rows served over three days by a model trained on 2015; on day 3 an upstream bug
    sends AGEP in months. Outcomes arrived for day 1 and half of day 2."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    uri = tmp_path_factory.mktemp("monitor") / "store"
    lw.init(project="monitor", uri=uri)
    data = load_acs([2015, 2018])
    train = data[data["year"] == 2015].sample(8000, random_state=0).reset_index(drop=True)
    version = lw.log_dataset(train[[*ACS_FEATURES, ACS_LABEL]], name="acs-train", split="train")
    attach_suite("acs-train", infer_suite(train[ACS_FEATURES]))
    model = HistGradientBoostingClassifier(max_iter=20, categorical_features="from_dtype")
    model.fit(train[ACS_FEATURES], train[ACS_LABEL])
    with lw.start_run(name="fit", capture_env=False) as run:
        run.use(version, role="train")
        registered = run.log_model(model, name="employment", input_example=train[ACS_FEATURES][:3])
    rows = data[data["year"] == 2018].sample(3 * ROWS_PER_DAY, random_state=1)
    rows = rows.reset_index(drop=True)
    proba = model.predict_proba(rows[ACS_FEATURES])
    rows.loc[2 * ROWS_PER_DAY :, "AGEP"] *= 12
    records = [
        PredictionRecord(
            project="monitor",
            deployment="employment",
            request_id=f"r{i}",
            model="employment",
            version=registered.version,
            timestamp_ms=START_MS + (i // ROWS_PER_DAY) * DAY_MS + i,
            latency_ms=2.0,
            inputs={
                c: float(cast(float, row.AGEP)) if c == "AGEP" else str(getattr(row, c))
                for c in ACS_FEATURES
            },
            outputs={"predict": int(proba[i].argmax()), "predict_proba": proba[i].tolist()},
        )
        for i, row in enumerate(rows.itertuples())
    ]
    write_predictions(lw.context.current().store, records)
    labelled = int(1.5 * ROWS_PER_DAY)
    log_outcomes("employment", [f"r{i}" for i in range(labelled)], rows[ACS_LABEL][:labelled])
    yield uri


@pytest.fixture
def monitored(served: Path) -> Path:
    """The served store as the current one (each test ends with ``lw.shutdown()``)."""
    lw.init(project="monitor", uri=served)
    return served


def _days(frame: pd.DataFrame, mask: pd.Series) -> list[int]:
    return sorted(
        {int((t.value // 10**6 - START_MS) // DAY_MS) for t in frame[mask]["window_start"]}
    )


def test_a_pass_finds_the_upstream_bug_and_measures_what_it_can(monitored: Path) -> None:
    report = monitor("employment", label=ACS_LABEL, slices=["SEX"], raise_alerts=False)
    assert report.traffic["rows"].tolist() == [ROWS_PER_DAY] * 3
    assert report.traffic["labelled"].tolist() == [ROWS_PER_DAY, ROWS_PER_DAY // 2, 0]
    assert "acs-train/1" in report.reference
    drift, skew, findings = report.drift, report.skew, report.validation
    for table, verdict in ((drift, "drifted"), (skew, "skewed")):
        age = table[table["column"] == "AGEP"]
        assert age[verdict].astype(bool).tolist()[2]  # months: far past any threshold
        assert age["statistic"].iloc[2] > 10 and (age["statistic"].iloc[:2] < 0.2).all()
        others = table[(table["column"] != "AGEP") & table[verdict].astype(bool)]
        assert others.empty, others
    errors = findings[findings["severity"] == "error"]
    assert set(zip(errors["column"], errors["rule"], strict=True)) == {("AGEP", "range")}
    accuracy = report.performance.query("metric == 'accuracy' and slice == 'all'")
    assert (accuracy["value"][:2] > 0.7).all() and np.isnan(accuracy["value"].iloc[2])
    assert "none of 600 rows is labelled" in accuracy["reason"].iloc[2]
    assert set(report.performance["slice"]) == {"all", "SEX"}
    estimated = report.estimated.query("metric == 'accuracy'")["value"].to_numpy()
    realised = accuracy["value"].to_numpy()[:2]
    assert np.abs(estimated[:2] - realised).max() < 0.05  # beside realised, where labels are
    assert report.distributions["AGEP"].kind == "numeric"
    rules = {a["rule"] for a in report.alerts}
    assert {"skew", "validation"} <= rules
    assert "drift" not in rules  # 1 of 16 columns: under the default dataset-level share
    day_3 = START_MS + 2 * DAY_MS
    assert all(a["window_start_ms"] == day_3 for a in report.alerts if a["rule"] == "validation")


def test_alerts_are_stored_once_and_repeat_as_occurrences(monitored: Path) -> None:
    rules = AlertRules(drift_share=0.05, min_performance={"accuracy": 0.99})
    first = monitor("employment", rules=rules)
    opened = list_alerts("employment")
    assert {a.rule for a in opened} >= {"drift", "skew", "validation", "performance"}
    assert len(opened) == len({a["id"] for a in first.alerts})
    monitor("employment", rules=rules)
    again = list_alerts("employment")
    assert {a.id for a in again} == {a.id for a in opened}
    assert all(a.occurrences >= 2 for a in again)


def test_an_empty_range_is_a_report_without_rows(monitored: Path) -> None:
    report = monitor("employment", start_ms=0, end_ms=DAY_MS, raise_alerts=False)
    assert report.traffic.empty and report.drift.empty and report.alerts == []
    quiet = monitor(
        "employment", start_ms=0, end_ms=DAY_MS, rules=AlertRules(min_rows=1), raise_alerts=False
    )
    assert quiet.alerts == []  # no window at all: nothing to count (see docs/monitoring.md)


def test_bad_arguments_are_refused(monitored: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="label='nope'"):
        monitor("employment", label="nope", raise_alerts=False)
    with pytest.raises(InvalidArgumentError, match="drift_share"):
        monitor("employment", rules=AlertRules(drift_share=2.0))
    with pytest.raises(InvalidArgumentError, match="Unknown alert rule"):
        AlertRules.from_dict({"drift": 0.5})


def test_cli_status_and_report(served: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--uri", str(served), "-p", "monitor", "monitor"]
    status = runner.invoke(app, [*base, "status", "employment", "--no-alerts", "--json"])
    assert status.exit_code == 0, status.output
    doc = json.loads(status.output)
    assert [w["rows"] for w in doc["traffic"]] == [ROWS_PER_DAY] * 3
    table = runner.invoke(app, [*base, "status", "employment", "--no-alerts"])
    assert table.exit_code == 0 and "AGEP" in table.output, table.output
    rules = tmp_path / "rules.yaml"
    rules.write_text("drift_share: 0.01\nmin_performance: {accuracy: 0.5}\n")
    html = tmp_path / "out" / "report.html"
    written = runner.invoke(
        app, [*base, "report", "employment", "-o", str(html), "--label", ACS_LABEL,
              "--rules", str(rules)],
    )  # fmt: skip
    assert written.exit_code == 0, written.output
    assert "Monitoring report" in html.read_text() and html.stat().st_size > 100_000
    bad = runner.invoke(app, [*base, "status", "employment", "--start", "yesterday-ish"])
    assert bad.exit_code == 1 and "--start" in str(bad.exception or "") + bad.output


def test_estimates_load_a_pickled_version_only_when_the_caller_allows(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    from loopwise.errors import UnsafeModelError

    lw.init(project="pickled", uri=tmp_path / "store")
    data = load_acs([2015]).sample(600, random_state=0).reset_index(drop=True)
    features = ["AGEP"]
    train = lw.log_dataset(data[[*features, ACS_LABEL]], name="acs-small", split="train")
    model = LogisticRegression().fit(data[features], data[ACS_LABEL])
    with lw.start_run(name="fit", capture_env=False) as run:
        run.use(train, role="train")
        registered = run.log_model(model, name="pickled", flavour="python", allow_pickle=True)
    proba = model.predict_proba(data[features])
    records = [
        PredictionRecord(
            project="pickled",
            deployment="pickled",
            request_id=f"r{i}",
            model="pickled",
            version=registered.version,
            timestamp_ms=START_MS + i,
            latency_ms=1.0,
            inputs={f: float(data[f].iloc[i]) for f in features},
            outputs={"predict": int(proba[i].argmax()), "predict_proba": proba[i].tolist()},
        )
        for i in range(len(data))
    ]
    write_predictions(lw.context.current().store, records)
    try:
        with pytest.raises(UnsafeModelError, match="allow_pickle=True"):
            monitor("pickled", label=ACS_LABEL, raise_alerts=False)
        report = monitor("pickled", label=ACS_LABEL, raise_alerts=False, allow_pickle=True)
        assert not report.estimated.empty
    finally:
        lw.shutdown()
