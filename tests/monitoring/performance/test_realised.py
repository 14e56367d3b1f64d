"""performance(): windows, slices, minimum sizes, unlabelled rows, undefined metrics, bad input,
batch equals loop, and the report's views (frame, dict, worst slices, slice minimums)."""

from __future__ import annotations

import json
import math
from typing import cast

import numpy as np
import pandas as pd
import pytest

from loopwise.errors import InvalidArgumentError
from loopwise.monitoring import performance, slice_minimums

DAY_MS = 86_400_000


def monitoring_frame(rows: int = 3000, seed: int = 0, days: int = 3) -> pd.DataFrame:
    """Like read_predictions joined with outcomes: one day in five without labels yet."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, rows)
    p1 = np.clip(0.3 * y + 0.7 * rng.random(rows), 0, 1)
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(rows)],
            "timestamp_ms": np.sort(rng.integers(0, days * DAY_MS, rows)),
            "input.colour": rng.choice(["red", "green", "blue"], rows, p=[0.6, 0.39, 0.01]),
            "input.age": rng.uniform(18, 90, rows).round(),
            "output.predict": (p1 > 0.5).astype(int),
            "output.predict_proba": list(np.c_[1 - p1, p1]),
            "outcome": np.where(rng.random(rows) < 0.2, np.nan, y),
        }
    )


def test_defaults_read_a_monitoring_frame() -> None:
    frame = monitoring_frame()
    report = performance(frame)
    assert report.metrics == [
        "accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "log_loss",
        "brier",
    ]  # fmt: skip
    results = report.to_frame()
    assert list(results.columns) == [
        "window", "window_start", "window_end", "slice", "slice_value", "metric", "value",
        "lower", "upper", "rows", "labelled", "reason",
    ]  # fmt: skip
    assert (results["rows"] == 3000).all()
    assert (results["labelled"] == frame["outcome"].notna().sum()).all()
    assert (results["lower"] <= results["value"]).all() and (
        results["value"] <= results["upper"]
    ).all()
    assert results["window_start"].iloc[0] == pd.Timestamp(
        frame["timestamp_ms"].min(), unit="ms", tz="UTC"
    )


def test_time_windows_are_anchored_and_half_open() -> None:
    frame = monitoring_frame(days=3)
    results = performance(frame, window="1D", metrics="accuracy").to_frame()
    assert results["window_start"].tolist() == [
        pd.Timestamp(day * DAY_MS, unit="ms", tz="UTC") for day in range(3)
    ]
    assert (results["window_end"] - results["window_start"] == pd.Timedelta("1D")).all()
    per_day = np.bincount(frame["timestamp_ms"] // DAY_MS)
    assert results["rows"].tolist() == per_day.tolist()


def test_count_windows_cut_every_n_rows_in_frame_order() -> None:
    frame = monitoring_frame(rows=2500)
    results = performance(frame, window=1000, metrics="accuracy").to_frame()
    assert results["rows"].tolist() == [1000, 1000, 500]
    stamps = pd.to_datetime(frame["timestamp_ms"], unit="ms", utc=True)
    assert results["window_start"].iloc[2] == stamps.iloc[2000]
    assert results["window_end"].iloc[2] == stamps.iloc[-1]


def test_batch_equals_loop_over_windows() -> None:
    frame = monitoring_frame(rows=2400, days=3)
    batch = performance(frame, window="1D", slices=["input.colour"], min_slice_rows=10)
    for day in range(3):
        rows = frame[frame["timestamp_ms"] // DAY_MS == day]
        alone = performance(rows, window="1D", slices=["input.colour"], min_slice_rows=10)
        got = batch.to_frame().query("window == @day").drop(columns="window")
        want = alone.to_frame().drop(columns="window")
        missing = sorted(set(got["slice_value"]) - set(want["slice_value"]))
        # a colour absent from this day alone is a "no rows" cell in the batch
        assert got[got["slice_value"].isin(missing)]["reason"].eq("no rows").all()
        got = got[~got["slice_value"].isin(missing)].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want.reset_index(drop=True))


def test_slices_by_category_and_by_readable_quantile_bins() -> None:
    frame = monitoring_frame(rows=5000)
    results = performance(frame, slices=["input.colour", "input.age"], metrics="accuracy")
    table = results.to_frame().set_index(["slice", "slice_value"])
    assert set(table.loc["input.colour"].index) == {"blue", "green", "red"}
    bins = table.loc["input.age"].index.tolist()
    assert len(bins) == 5 and bins[0].startswith("[18, ") and bins[-1].endswith(", 90]")
    assert all(len(edge) <= 4 for label in bins for edge in label.strip("[)]").split(", "))
    assert cast("pd.Series[int]", table.loc["input.age", "rows"]).sum() == 5000


def test_custom_segments_from_a_mask_or_a_function() -> None:
    frame = monitoring_frame()
    old = (frame["input.age"] >= 65).to_numpy()
    report = performance(
        frame,
        metrics=["accuracy"],
        slices={
            "senior": old,
            "young_red": lambda f: (f["input.age"] < 30) & (f["input.colour"] == "red"),
        },
    )
    results = report.to_frame().set_index("slice")
    assert results.loc["senior", "rows"] == old.sum()
    assert results.loc["senior", "slice_value"] == "True"
    labelled = frame[old & frame["outcome"].notna()]
    want = (labelled["outcome"] == labelled["output.predict"]).mean()
    assert results.loc["senior", "value"] == pytest.approx(want, abs=1e-12)
    with pytest.raises(InvalidArgumentError, match=r"slices\['short'\].*one entry per row"):
        performance(frame, slices={"short": old[:10]})
    with pytest.raises(InvalidArgumentError, match="boolean mask"):
        performance(frame, slices={"ages": frame["input.age"]})
    with pytest.raises(InvalidArgumentError, match="no column 'nope'"):
        performance(frame, slices=["nope"])


def test_small_slices_are_reported_with_a_reason_not_hidden() -> None:
    frame = monitoring_frame(rows=1000)
    results = performance(frame, slices=["input.colour"], min_slice_rows=30).to_frame()
    blue = results[results["slice_value"] == "blue"]
    assert len(blue) == 8 and blue["value"].isna().all() and blue["lower"].isna().all()
    labelled = int(blue["labelled"].iloc[0])
    assert 0 < labelled < 30
    assert blue["reason"].eq(f"{labelled} labelled rows, fewer than min_slice_rows=30").all()
    assert results[results["slice_value"] == "red"]["value"].notna().all()


def test_unlabelled_rows_are_counted_but_not_scored() -> None:
    frame = monitoring_frame(rows=900, days=3)
    frame.loc[frame["timestamp_ms"] >= 2 * DAY_MS, "outcome"] = np.nan  # labels not in yet
    results = performance(frame, window="1D", metrics=["accuracy", "roc_auc"]).to_frame()
    last = results[results["window"] == 2]
    assert last["value"].isna().all() and (last["labelled"] == 0).all() and (last["rows"] > 0).all()
    assert last["reason"].str.startswith("none of").all()
    assert results[results["window"] < 2]["value"].notna().all()


def test_one_class_in_a_window_leaves_auc_undefined_with_a_reason() -> None:
    frame = monitoring_frame(rows=600)
    frame["outcome"] = frame["outcome"].where(frame["outcome"].isna(), 1.0)
    report = performance(frame)
    assert math.isnan(report.value("roc_auc"))
    reason = report.to_frame().set_index("metric").loc["roc_auc", "reason"]
    assert reason == "only one class among the labelled rows"
    assert not math.isnan(report.value("accuracy")) and not math.isnan(report.value("log_loss"))


def test_no_predicted_positive_leaves_precision_undefined() -> None:
    frame = pd.DataFrame({"outcome": [0, 1] * 50, "output.predict": [0] * 100})
    report = performance(frame)
    assert math.isnan(report.value("precision"))
    assert report.value("recall") == 0.0 and report.value("accuracy") == 0.5


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_infinite_scores_name_the_column(bad: float) -> None:
    frame = monitoring_frame(rows=200)
    frame.at[frame["outcome"].first_valid_index(), "output.predict_proba"] = np.array([bad, 0.5])  # type: ignore[assignment]
    with pytest.raises(InvalidArgumentError, match="'output.predict_proba'.*NaN or infinite"):
        performance(frame)


def test_bad_frames_and_settings_fail_clearly() -> None:
    frame = monitoring_frame(rows=200)
    with pytest.raises(InvalidArgumentError, match="equal length"):
        performance({"outcome": [1, 0, 1], "output.predict": [1, 0]})
    with pytest.raises(InvalidArgumentError, match="empty frame"):
        performance(frame.iloc[:0])
    with pytest.raises(InvalidArgumentError, match="DataFrame"):
        performance([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"label='y'.*no such column"):
        performance(frame, label="y")
    with pytest.raises(InvalidArgumentError, match=r"unknown metric 'auc'.*'roc_auc'"):
        performance(frame, metrics=["accuracy", "auc"])
    with pytest.raises(InvalidArgumentError, match="rmse is a regression metric"):
        performance(frame, metrics="rmse")
    with pytest.raises(InvalidArgumentError, match="needs predicted probabilities"):
        performance(frame.drop(columns="output.predict_proba"), metrics="log_loss")
    with pytest.raises(InvalidArgumentError, match="confidence"):
        performance(frame, confidence=1.5)
    with pytest.raises(InvalidArgumentError, match="min_slice_rows"):
        performance(frame, min_slice_rows=0)
    with pytest.raises(InvalidArgumentError, match="not a pandas offset alias"):
        performance(frame, window="fortnightly")
    with pytest.raises(InvalidArgumentError, match="at least 1 row"):
        performance(frame, window=0)
    with pytest.raises(InvalidArgumentError, match="needs a time column"):
        performance(frame.drop(columns="timestamp_ms"), window="1D")
    with pytest.raises(InvalidArgumentError, match="labelled rows have no prediction"):
        performance(frame.assign(**{"output.predict": np.nan}))


def test_type_changes_and_unseen_classes_fail_clearly() -> None:
    frame = monitoring_frame(rows=200)
    mixed = frame.assign(outcome=frame["outcome"].astype(object))
    mixed.loc[mixed["outcome"].notna(), "outcome"] = ["1", 0] * (  # type: ignore[index, assignment]
        mixed["outcome"].notna().sum() // 2
    ) + (["1"] if mixed["outcome"].notna().sum() % 2 else [])
    with pytest.raises(InvalidArgumentError, match="different types|mixes types"):
        performance(mixed, task="classification")
    with pytest.raises(InvalidArgumentError, match=r"not among classes"):
        performance(frame, classes=[0, 2])
    with pytest.raises(InvalidArgumentError, match="expected 4 probabilities per row"):
        performance(frame.assign(outcome=frame["outcome"].fillna(0) + 2 * (frame.index % 3 == 0)))


def test_multiclass_rejects_a_positive_class_and_needs_every_class_for_auc() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 600)
    proba = rng.dirichlet([1, 1, 1], 600)
    frame = pd.DataFrame(
        {"outcome": y, "output.predict": proba.argmax(1), "output.predict_proba": list(proba)}
    )
    with pytest.raises(InvalidArgumentError, match="positive=1 applies to binary"):
        performance(frame, positive=1)
    frame.loc[frame["outcome"] == 2, "outcome"] = np.nan  # class 2 never labelled
    report = performance(frame, classes=[0, 1, 2])
    assert math.isnan(report.value("roc_auc"))
    assert not math.isnan(report.value("f1"))


def test_task_is_inferred_and_can_be_overridden() -> None:
    rng = np.random.default_rng(0)
    numbers = pd.DataFrame(
        {"outcome": rng.normal(size=100), "output.predict": rng.normal(size=100)}
    )
    assert performance(numbers).task == "regression"
    counts = pd.DataFrame(
        {"outcome": rng.integers(0, 5, 100), "output.predict": rng.integers(0, 5, 100)}
    )
    assert performance(counts).task == "classification"
    assert performance(counts, task="regression").metrics == ["rmse", "mae", "mape", "r2"]
    with pytest.raises(InvalidArgumentError, match="finite numbers"):
        performance(numbers.assign(**{"output.predict": np.inf}))


def test_to_dict_is_json_and_names_the_interval_methods() -> None:
    report = performance(monitoring_frame(rows=600), window="1D", slices=["input.colour"])
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["methods"]["accuracy"].startswith("Wilson")
    assert data["methods"]["roc_auc"].startswith("DeLong")
    assert data["methods"]["f1"].startswith("percentile bootstrap")
    assert len(data["results"]) == len(report.to_frame())
    assert data["results"][0]["window_start"].startswith("1970-01-01T00:00:00")
    assert any(r["value"] is None and r["reason"] for r in data["results"])


def test_worst_slices_and_slice_minimums_gate_on_slices() -> None:
    frame = monitoring_frame(rows=4000)
    # make one colour much worse: flip its predictions
    green = frame["input.colour"] == "green"
    frame.loc[green, "output.predict"] = 1 - frame.loc[green, "output.predict"]
    report = performance(frame, slices=["input.colour"])
    worst = report.worst_slices("accuracy", k=1)
    assert worst["slice_value"].tolist() == ["green"]
    assert report.worst_slices("log_loss", k=3)["value"].is_monotonic_decreasing
    failing = slice_minimums(report, {"accuracy": 0.6})
    assert set(failing["slice_value"]) == {"green", "all"}
    assert (failing["shortfall"] > 0).all() and (failing["threshold"] == 0.6).all()
    assert slice_minimums(report, {"accuracy": 0.2}).empty
    # a loss threshold is a maximum; confident=True fails only a whole interval beyond it
    red_loss = report.value("log_loss", slice="input.colour", slice_value="red")
    lenient = slice_minimums(report, {"log_loss": red_loss - 1e-6}, confident=True)
    assert "red" not in set(lenient["slice_value"])
    assert "red" in set(slice_minimums(report, {"log_loss": red_loss - 1e-6})["slice_value"])
    with pytest.raises(InvalidArgumentError, match="not in this report"):
        slice_minimums(report, {"rmse": 1.0})
    with pytest.raises(InvalidArgumentError, match="No slice"):
        report.value("accuracy", slice="input.colour", slice_value="purple")
