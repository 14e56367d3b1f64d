"""compute_report, the computing half of a monitoring pass: on frames, with no store at all."""

from __future__ import annotations

from typing import Any, NoReturn

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from loopwise.data import infer_suite, profile
from loopwise.monitoring import AlertRules, MonitorReport
from loopwise.monitoring.monitor import MonitorInputs, compute_report
from loopwise.monitoring.monitor import load as load_module

DAY_MS = 86_400_000
START_MS = 19_000 * DAY_MS
ROWS_PER_DAY = 200
FEATURES = ["x", "c"]


def _reference(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.normal(size=rows), "c": rng.choice(["a", "b"], rows)})
    frame["y"] = (frame["x"] + rng.normal(scale=0.3, size=rows) > 0).astype(int)
    return frame


def _predictions(model: LogisticRegression) -> pd.DataFrame:
    """Three days served; day 1 labelled; on day 3 an upstream bug shifts x by 4."""
    served = _reference(3 * ROWS_PER_DAY, seed=1)
    day = np.arange(len(served)) // ROWS_PER_DAY
    served.loc[day == 2, "x"] += 4.0
    proba = model.predict_proba(served[["x"]])
    return pd.DataFrame(
        {
            "timestamp_ms": START_MS + day * DAY_MS + np.arange(len(served)),
            "model": "m",
            "version": 1,
            "input.x": served["x"],
            "input.c": served["c"],
            "outcome": served["y"].astype(float).where(day == 0),
            "output.predict": proba.argmax(axis=1),
            "output.predict_proba": list(proba),
        }
    )


class _ByX:
    """The served model: it reads x only, as a pipeline would pick its columns."""

    def __init__(self, fitted: LogisticRegression) -> None:
        self.fitted = fitted
        self.classes_ = fitted.classes_

    def predict_proba(self, frame: pd.DataFrame) -> Any:
        return self.fitted.predict_proba(frame[["x"]])


@pytest.fixture
def no_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any read of the current context (and so of the store) fails the test."""

    def refuse() -> NoReturn:
        raise AssertionError("compute_report read the current context")

    monkeypatch.setattr(load_module, "current", refuse)
    monkeypatch.setattr("loopwise.monitoring.outcomes.current", refuse)
    monkeypatch.setattr("loopwise.monitoring.alerts.current", refuse)


def test_a_report_is_computed_from_frames_alone(no_store: None) -> None:
    reference = _reference(2000, seed=0)
    fitted = LogisticRegression().fit(reference[["x"]], reference["y"])
    inputs = MonitorInputs(
        project="p",
        deployment="d",
        start_ms=None,
        end_ms=None,
        window="1D",
        generated_ms=START_MS + 3 * DAY_MS,
        predictions=_predictions(fitted),
        reference=reference,
        reference_text="reference frame",
        profiles={1: profile(reference[FEATURES])},
        suites={1: infer_suite(reference[FEATURES])},
        label="y",
        calibration=reference,
        model=_ByX(fitted),
    )
    report = compute_report(inputs, slices=["c"])
    assert isinstance(report, MonitorReport) and report.reference == "reference frame"
    assert report.traffic["rows"].tolist() == [ROWS_PER_DAY] * 3
    assert report.traffic["labelled"].tolist() == [ROWS_PER_DAY, 0, 0]
    drifted = report.drift[report.drift["drifted"].astype(bool)]
    assert set(drifted["column"]) == {"x"}
    day_3 = pd.Timestamp(START_MS + 2 * DAY_MS, unit="ms", tz="UTC")
    assert day_3 in set(drifted["window_start"])
    skewed = report.skew[report.skew["skewed"].astype(bool)]
    assert set(skewed["column"]) == {"x"}
    accuracy = report.performance.query("metric == 'accuracy' and slice == 'all'")
    assert accuracy["value"].iloc[0] > 0.8 and set(report.performance["slice"]) == {"all", "c"}
    assert len(report.estimated.query("metric == 'accuracy'")) == 3
    assert {"skew", "validation"} <= {a["rule"] for a in report.alerts}
    assert all("id" not in a for a in report.alerts)  # computed, not stored
    rows = report.summary_rows()
    assert [r[1] for r in rows] == [ROWS_PER_DAY] * 3
    assert rows[2][0] == str(day_3) and rows[2][3] == "x" and rows[2][5] > 0
    assert rows[0][6] == accuracy["value"].iloc[0] and rows[2][6] is not None


def test_without_a_label_nothing_is_estimated(no_store: None) -> None:
    reference = _reference(2000, seed=0)
    fitted = LogisticRegression().fit(reference[["x"]], reference["y"])
    inputs = MonitorInputs(
        project="p",
        deployment="d",
        start_ms=None,
        end_ms=None,
        window=ROWS_PER_DAY,
        generated_ms=0,
        predictions=_predictions(fitted),
        reference=reference,
    )
    report = compute_report(inputs, rules=AlertRules(min_performance={"accuracy": 0.99}))
    assert report.estimated.empty and report.skew.empty and report.validation.empty
    assert len(report.traffic) == 3 and report.window == str(ROWS_PER_DAY)
    assert {a["rule"] for a in report.alerts} >= {"performance"}


def test_no_predictions_is_a_report_without_rows(no_store: None) -> None:
    empty = pd.DataFrame({c: [] for c in ["timestamp_ms", "model", "version", "outcome"]})
    inputs = MonitorInputs(
        project="p",
        deployment="d",
        start_ms=5,
        end_ms=None,
        window="1D",
        generated_ms=99,
        predictions=empty,
    )
    report = compute_report(inputs)
    assert (report.start_ms, report.end_ms, report.reference) == (
        5,
        99,
        "no predictions in this range",
    )
    assert report.traffic.empty and report.alerts == [] and report.summary_rows() == []
