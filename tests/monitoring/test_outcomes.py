"""Delayed labels: log the ACS outcomes of a served model's predictions late, in parts, twice,
and join them back to the prediction log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
import pytest

from loopwise.context import Context
from loopwise.errors import InvalidArgumentError
from loopwise.examples import load_acs
from loopwise.monitoring import (
    OutcomeCoverage,
    join_outcomes,
    log_outcomes,
    monitoring_frame,
    outcome_coverage,
)
from loopwise.store import OutcomeReceipt
from loopwise.store.predictions import PredictionRecord, read_predictions, write_predictions

T0_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC
FEATURES = ["AGEP", "SCHL", "MAR", "SEX"]


@pytest.fixture(scope="module")
def scored() -> pd.DataFrame:
    """2016 people (600), scored by a logistic regression trained on 2015 (2,000 people)."""
    from sklearn.linear_model import LogisticRegression

    acs = load_acs([2015, 2016])
    train = acs[acs["year"] == 2015].sample(2000, random_state=1)
    model = LogisticRegression(max_iter=500).fit(train[FEATURES].astype(float), train["employed"])
    people = acs[acs["year"] == 2016].sample(600, random_state=2).reset_index(drop=True)
    people["predict"] = model.predict(people[FEATURES].astype(float))
    people["proba"] = model.predict_proba(people[FEATURES].astype(float)).tolist()
    people["request_id"] = [f"req-{i}:0" for i in people["id"]]
    people["timestamp_ms"] = T0_MS + np.arange(len(people)) * 60_000  # one a minute
    return people


@pytest.fixture
def served(ctx: Context, scored: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """The scored people written to the prediction log of deployment 'employment'."""
    records = [
        PredictionRecord(
            project=ctx.project,
            deployment="employment",
            request_id=cast(str, row.request_id),
            model="employment",
            version=1,
            timestamp_ms=int(cast(int, row.timestamp_ms)),
            latency_ms=1.0,
            inputs={f: getattr(row, f) for f in FEATURES},
            outputs={"predict": int(cast(int, row.predict)), "predict_proba": row.proba},
        )
        for row in scored.itertuples()
    ]
    write_predictions(ctx.store, records)
    yield scored


def test_outcomes_arrive_late_in_parts_and_join(served: pd.DataFrame) -> None:
    ids, labels = served["request_id"], served["employed"]
    first = log_outcomes("employment", ids[:200], labels[:200], timestamp_ms=T0_MS + 86_400_000)
    assert first == OutcomeReceipt(new=200, duplicates=0)
    frame = monitoring_frame("employment")
    assert len(frame) == len(served)
    assert frame["outcome"].notna().sum() == 200
    # Rows come back in time order, so ids line up with the served frame.
    assert frame["request_id"].tolist() == served["request_id"].tolist()
    np.testing.assert_array_equal(frame["outcome"][:200], labels[:200].to_numpy(dtype=float))
    assert frame["outcome_timestamp_ms"][:200].eq(T0_MS + 86_400_000).all()
    assert frame[["outcome", "outcome_timestamp_ms"]][200:].isna().all().all()
    # The rest arrives later, overlapping the first part: the overlap is a no-op.
    second = log_outcomes("employment", ids[100:].to_numpy(), labels[100:].to_numpy())
    assert second == OutcomeReceipt(new=400, duplicates=100)
    again = monitoring_frame("employment")
    np.testing.assert_array_equal(again["outcome"], labels.to_numpy(dtype=float))
    coverage = outcome_coverage("employment")
    assert (coverage.predictions, coverage.labelled, coverage.share) == (600, 600, 1.0)
    # Realised accuracy from the joined frame is what the model's predictions give.
    accuracy = (again["outcome"] == again["output.predict"]).mean()
    assert accuracy == pytest.approx((served["predict"] == served["employed"]).mean())
    assert 0.6 < accuracy < 0.95


def test_coverage_of_a_window_and_the_delay(served: pd.DataFrame) -> None:
    half = served.iloc[::2]
    log_outcomes(
        "employment",
        half["request_id"].tolist(),
        half["employed"].tolist(),
        timestamp_ms=(half["timestamp_ms"] + 3_600_000).tolist(),  # an hour after each
    )
    hour = outcome_coverage("employment", T0_MS, T0_MS + 3_600_000)
    assert (hour.predictions, hour.labelled) == (60, 30)
    assert hour.share == 0.5
    assert hour.median_delay_ms == 3_600_000
    empty = outcome_coverage("employment", 0, 1)
    assert (empty.predictions, empty.labelled) == (0, 0)
    assert np.isnan(empty.share) and np.isnan(empty.median_delay_ms)


def test_conflicts_are_kept_unless_overwritten(served: pd.DataFrame) -> None:
    ids = served["request_id"][:10].tolist()
    truth = served["employed"][:10].to_numpy()
    log_outcomes("employment", ids, truth)
    flipped = 1 - truth
    receipt = log_outcomes("employment", ids, flipped)
    assert (receipt.new, receipt.duplicates, receipt.updated) == (0, 0, 0)
    assert receipt.conflicts == ids
    frame = monitoring_frame("employment")
    np.testing.assert_array_equal(frame["outcome"][:10], truth)
    receipt = log_outcomes("employment", ids, flipped, overwrite=True)
    assert (receipt.updated, receipt.conflicts) == (10, [])
    np.testing.assert_array_equal(monitoring_frame("employment")["outcome"][:10], flipped)


def test_outcomes_without_a_logged_prediction_are_kept(ctx: Context, served: pd.DataFrame) -> None:
    # The prediction may still be in a server's spool: its outcome waits for it.
    log_outcomes("employment", ["late-1:0"], ["yes"])
    frame = monitoring_frame("employment")
    assert "late-1:0" not in set(frame["request_id"])
    write_predictions(
        ctx.store,
        [
            PredictionRecord(
                project="test", deployment="employment", request_id="late-1:0",
                model="employment", version=1, timestamp_ms=T0_MS, latency_ms=1.0,
                inputs={"AGEP": 40.0}, outputs={"predict": 1},
            )
        ],
    )  # fmt: skip
    joined = monitoring_frame("employment")
    assert joined.loc[joined["request_id"] == "late-1:0", "outcome"].tolist() == ["yes"]
    assert joined["outcome"].dtype == object  # a string among numbers: kept as they are


def test_join_a_plain_frame_with_other_names(ctx: Context, scored: pd.DataFrame) -> None:
    frame = scored[["id", "predict"]].head(5).rename(columns={"id": "person"})
    log_outcomes("offline", frame["person"].astype(str), [True, False, True, True, False])
    joined = join_outcomes(frame, "offline", request_id="person")
    assert list(joined.columns) == ["person", "predict", "outcome", "outcome_timestamp_ms"]
    assert joined["outcome"].tolist() == [True, False, True, True, False]
    assert "outcome" not in frame.columns  # the caller's frame is left alone
    ctx.store.get_or_create_project("other")
    # Another project's outcomes, passed explicitly.
    empty = join_outcomes(frame, "offline", store=ctx.store, project="other", request_id="person")
    assert empty["outcome"].isna().all()
    coverage = OutcomeCoverage.of(joined, time="nothing")
    assert (coverage.labelled, np.isnan(coverage.median_delay_ms)) == (5, True)


@pytest.mark.parametrize(
    ("ids", "labels", "match"),
    [
        (["a", "b"], [1, None], r"labels\[1\] \(request id 'b'\) is missing"),
        (["a", "b"], [1, np.nan], r"labels\[1\]"),
        (["a", "b"], pd.Series([1, pd.NA], dtype="Int64"), r"labels\[1\]"),
        (["a", "b"], [1], "one label per request id"),
        ("a", [1], "list, array or Series"),
        (["a"], 1, "list, array or Series"),
        (["a", ""], [1, 2], "1-256 characters"),
        (["a"], [np.inf], "finite number"),
        (["a"], [[1, 2]], "a number, a string or a bool"),
        (["a", "a"], [1, 2], "different outcomes"),
    ],
)
def test_bad_outcomes_are_refused(ctx: Context, ids: object, labels: object, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        log_outcomes("employment", ids, labels)
    assert ctx.store.get_outcomes(ctx.project, "employment", ["a", "b"]) == {}


def test_bad_timestamps_and_frames_are_refused(ctx: Context, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="one per request id"):
        log_outcomes("d", ["a", "b"], [1, 0], timestamp_ms=[1])
    with pytest.raises(InvalidArgumentError, match=r"timestamp_ms\[1\]"):
        log_outcomes("d", ["a", "b"], [1, 0], timestamp_ms=[1, np.nan])
    with pytest.raises(InvalidArgumentError, match="deployment name"):
        log_outcomes("not a name", ["a"], [1])
    with pytest.raises(InvalidArgumentError, match="DataFrame"):
        join_outcomes([1, 2], "d")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="no column 'request_id'"):
        join_outcomes(pd.DataFrame({"id": ["a"]}), "d")
    with pytest.raises(InvalidArgumentError, match="missing ids"):
        join_outcomes(pd.DataFrame({"request_id": ["a", None]}), "d")
    with pytest.raises(InvalidArgumentError, match="joined with its outcomes"):
        OutcomeCoverage.of(pd.DataFrame({"request_id": ["a"]}))
    empty = join_outcomes(read_predictions(ctx.store, ctx.project, "d"), "d")
    assert list(empty.columns)[-2:] == ["outcome", "outcome_timestamp_ms"] and empty.empty
