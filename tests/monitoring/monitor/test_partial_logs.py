"""The monitor on a log as it really grows: some rows without scores, some logged twice.

A row without ``predict_proba`` (a route that computed ``predict`` only) once made the whole
log unreadable for monitoring; a request id logged twice (a rerun of the demo, a client that
retried with its ``X-Request-Id``) was counted twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import loopwise as lw
from loopwise.monitoring import monitor, monitoring_frame, performance
from loopwise.monitoring.outcomes import log_outcomes
from loopwise.monitoring.performance import PerformanceEstimator
from loopwise.store.predictions import PredictionRecord, write_predictions

DAY_MS = 86_400_000
START_MS = 19_000 * DAY_MS
ROWS_PER_DAY = 300
UNSCORED = 100  # rows of day 2 logged without their class probabilities


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.normal(size=rows)})
    frame["y"] = (frame["x"] + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    return frame


def _records(model: LogisticRegression, served: pd.DataFrame) -> list[PredictionRecord]:
    """Two days of traffic; the first ``UNSCORED`` rows of day 2 carry ``predict`` only."""
    proba = model.predict_proba(served[["x"]])
    records = []
    for i, (x, p) in enumerate(zip(served["x"], proba, strict=True)):
        day = i // ROWS_PER_DAY
        outputs: dict[str, object] = {"predict": int(p.argmax())}
        if not (day == 1 and i % ROWS_PER_DAY < UNSCORED):
            outputs["predict_proba"] = p.tolist()
        records.append(
            PredictionRecord(
                project="partial",
                deployment="churn",
                request_id=f"r{i}",
                model="churn",
                version=1,
                timestamp_ms=START_MS + day * DAY_MS + i,
                latency_ms=1.0,
                inputs={"x": float(x)},
                outputs=outputs,
            )
        )
    return records


@pytest.fixture
def logged(tmp_path: Path) -> Iterator[list[PredictionRecord]]:
    """A model trained on a recorded dataset, two days of its log, every outcome known."""
    lw.init(project="partial", uri=tmp_path / "store")
    train = _frame(2000, seed=0)
    version = lw.log_dataset(train, name="train", split="train")
    model = LogisticRegression().fit(train[["x"]], train["y"])
    with lw.start_run(name="fit", capture_env=False) as run:
        run.use(version, role="train")
        run.log_model(model, name="churn", input_example=train[["x"]].head(2))
    served = _frame(2 * ROWS_PER_DAY, seed=1)
    records = _records(model, served)
    write_predictions(lw.context.current().store, records)
    log_outcomes("churn", [r.request_id for r in records], served["y"].tolist())
    yield records
    lw.shutdown()


def test_rows_without_scores_are_left_out_of_score_metrics_only(
    logged: list[PredictionRecord],
) -> None:
    report = monitor("churn", window="1D", label="y", raise_alerts=False)
    assert report.traffic["rows"].tolist() == [ROWS_PER_DAY] * 2
    assert report.traffic["unscored"].tolist() == [0, UNSCORED] and report.unscored == UNSCORED
    assert report.summary_columns[-1] == "unscored"
    assert [row[-1] for row in report.summary_rows()] == [0, UNSCORED]
    day_2 = report.performance[
        report.performance["window_start"] == report.traffic["window_start"][1]
    ]
    day_2 = day_2[day_2["slice"] == "all"].set_index("metric")
    assert day_2.loc["accuracy", "labelled"] == ROWS_PER_DAY  # label metrics: every row
    assert day_2.loc["roc_auc", "labelled"] == ROWS_PER_DAY - UNSCORED  # score metrics: scored
    assert 0.5 < day_2.loc["roc_auc", "value"] <= 1
    estimated = report.estimated.query("metric == 'accuracy'")
    assert estimated["rows"].tolist() == [ROWS_PER_DAY, ROWS_PER_DAY - UNSCORED]
    assert estimated["value"].notna().all()


def test_score_metrics_match_the_scored_rows_alone(logged: list[PredictionRecord]) -> None:
    frame = monitoring_frame("churn")
    report = performance(frame, window="1D")
    scored = frame[frame["output.predict_proba"].map(lambda v: isinstance(v, np.ndarray | list))]
    alone = performance(scored, window="1D")
    assert report.unscored == UNSCORED
    for window in (0, 1):
        assert report.value("roc_auc", window=window) == alone.value("roc_auc", window=window)
        assert report.value("log_loss", window=window) == alone.value("log_loss", window=window)
    assert report.value("accuracy", window=1) != alone.value("accuracy", window=1)


def test_estimates_leave_rows_without_scores_out(logged: list[PredictionRecord]) -> None:
    frame = monitoring_frame("churn")
    reference = frame[frame["timestamp_ms"] < START_MS + DAY_MS]
    estimator = PerformanceEstimator(reference_chunks=5).fit(reference, time=None)
    found = estimator.estimate(frame, window="1D", time="timestamp_ms")
    assert found.unscored == UNSCORED
    assert [e.rows for e in found.estimates if e.metric == "accuracy"] == [
        ROWS_PER_DAY,
        ROWS_PER_DAY - UNSCORED,
    ]


def test_a_request_logged_again_is_counted_once_and_the_last_write_wins(
    logged: list[PredictionRecord],
) -> None:
    store = lw.context.current().store
    write_predictions(store, logged)  # the same rows again, as a second run of the demo wrote
    retried = dataclasses.replace(logged[0], outputs={"predict": 7}, latency_ms=9.0)
    write_predictions(store, [retried])  # the same request at the same time, answered anew
    frame = monitoring_frame("churn")
    assert len(frame) == 2 * ROWS_PER_DAY and frame["request_id"].is_unique
    first = frame.set_index("request_id").loc["r0"]
    assert first["output.predict"] == 7 and first["latency_ms"] == 9.0
    write_predictions(store, logged[:1])  # and the original once more: it wins again
    report = monitor("churn", window="1D", label="y", raise_alerts=False)
    assert report.traffic["rows"].tolist() == [ROWS_PER_DAY] * 2
    assert report.traffic["labelled"].tolist() == [ROWS_PER_DAY] * 2
    assert report.traffic["unscored"].tolist() == [0, UNSCORED]
    expected = performance(monitoring_frame("churn"), window="1D").value("accuracy", window=0)
    assert expected == performance(_first_write(logged), window="1D").value("accuracy", window=0)


def _first_write(records: list[PredictionRecord]) -> pd.DataFrame:
    """The frame the records alone make (labels from the joined log, which has them)."""
    joined = monitoring_frame("churn").set_index("request_id")
    return pd.DataFrame(
        {
            "timestamp_ms": [r.timestamp_ms for r in records],
            "output.predict": [r.outputs["predict"] for r in records],
            "outcome": joined.loc[[r.request_id for r in records], "outcome"].to_numpy(),
        }
    )


def test_shadow_rows_share_the_live_id_and_stay_apart(logged: list[PredictionRecord]) -> None:
    store = lw.context.current().store
    shadow = [dataclasses.replace(r, version=2, shadow=True) for r in logged[:10]]
    write_predictions(store, shadow + shadow)  # each copy logged twice
    both = monitoring_frame("churn", shadow=None)
    assert len(both) == 2 * ROWS_PER_DAY + 10
    assert len(monitoring_frame("churn", shadow=True)) == 10
    assert len(monitoring_frame("churn")) == 2 * ROWS_PER_DAY
