"""Every metric equals scikit-learn's in every cell (window x slice), on random data and on the
ACS data scored by a model trained on 2015."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

from loopwise.examples import acs_file
from loopwise.monitoring import PerformanceReport, performance

ACS = acs_file()
TOLERANCE = 1e-9


def _binary(y: Any, pred: Any, proba: Any, pos: Any) -> dict[str, float]:
    kw = {"pos_label": pos}
    return {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred, **kw),
        "recall": skm.recall_score(y, pred, **kw),
        "f1": skm.f1_score(y, pred, **kw),
        "roc_auc": skm.roc_auc_score(np.asarray(y) == pos, proba[:, 1]),
        "log_loss": skm.log_loss(y, proba),
        "brier": skm.brier_score_loss(y, proba[:, 1], pos_label=pos),
    }


def _multiclass(y: Any, pred: Any, proba: Any, labels: list[Any]) -> dict[str, float]:
    kw = {"average": "macro", "zero_division": 0.0}
    return {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred, **kw),
        "recall": skm.recall_score(y, pred, **kw),
        "f1": skm.f1_score(y, pred, **kw),
        "roc_auc": skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=labels),
        "log_loss": skm.log_loss(y, proba, labels=labels),
        "brier": skm.brier_score_loss(y, proba, labels=labels),
    }


def _regression(y: Any, pred: Any) -> dict[str, float]:
    return {
        "rmse": skm.root_mean_squared_error(y, pred),
        "mae": skm.mean_absolute_error(y, pred),
        "mape": skm.mean_absolute_percentage_error(y, pred),
        "r2": skm.r2_score(y, pred),
    }


def _check_every_cell(
    report: PerformanceReport,
    frame: pd.DataFrame,
    window_of: np.ndarray,
    slice_of: Callable[[str, str], np.ndarray],
    expected: Callable[[pd.DataFrame], dict[str, float]],
    label: str = "outcome",
) -> int:
    """Compare each reported value with scikit-learn on that cell's labelled rows."""
    checked = 0
    results = report.to_frame()
    for (window, name, value), cell in results.groupby(["window", "slice", "slice_value"]):
        rows = frame[
            (window_of == window)
            & slice_of(cast(str, name), cast(str, value))
            & frame[label].notna()
        ]
        assert (cell["labelled"] == len(rows)).all()
        if len(rows) < report.min_slice_rows:
            assert cell["value"].isna().all()
            continue
        want = expected(rows)
        for metric, got in zip(cell["metric"], cell["value"], strict=True):
            assert got == pytest.approx(want[metric], abs=TOLERANCE), (window, name, value, metric)
            checked += 1
    return checked


def _column_slices(frame: pd.DataFrame) -> Callable[[str, str], np.ndarray]:
    def rows_of(name: str, value: str) -> np.ndarray:
        if name == "all":
            return np.ones(len(frame), dtype=bool)
        return (frame[name].astype(str) == value).to_numpy()

    return rows_of


def test_binary_metrics_equal_sklearn_in_every_window_and_slice() -> None:
    rng = np.random.default_rng(1)
    rows = 3000
    y = rng.integers(0, 2, rows)
    p1 = np.clip(0.35 * y + 0.65 * rng.random(rows), 0, 1)
    p1[:50] = 0.5  # ties
    frame = pd.DataFrame(
        {
            "outcome": np.where(rng.random(rows) < 0.1, np.nan, y),  # 10% not labelled yet
            "output.predict": (p1 > 0.5).astype(int),
            "output.predict_proba": list(np.c_[1 - p1, p1]),
            "group": rng.choice(["a", "b", "c", "d"], rows, p=[0.5, 0.3, 0.19, 0.01]),
        }
    )
    report = performance(frame, window=1000, slices=["group"], min_slice_rows=20)

    def expected(cell: pd.DataFrame) -> dict[str, float]:
        proba = np.vstack(cell["output.predict_proba"])  # type: ignore[call-overload]
        return _binary(cell["outcome"].astype(int), cell["output.predict"], proba, 1)

    window_of = np.arange(rows) // 1000
    checked = _check_every_cell(report, frame, window_of, _column_slices(frame), expected)
    assert checked == 3 * 4 * 8  # group "d" (about 10 rows a window) is below the minimum
    assert report.task == "classification" and report.positive == 1


def test_string_classes_with_a_named_positive_class() -> None:
    rng = np.random.default_rng(2)
    y = rng.choice(["no", "yes"], 500)
    p_yes = np.clip((y == "yes") * 0.3 + rng.random(500) * 0.7, 0, 1)
    pred = np.where(p_yes > 0.5, "yes", "no")
    # classes in the model's order: "yes" first, so the scores are [P(yes), P(no)]
    frame = pd.DataFrame({"y": y, "p": pred, "s": list(np.c_[p_yes, 1 - p_yes])})
    report = performance(
        frame, label="y", prediction="p", scores="s", classes=["yes", "no"], positive="yes"
    )
    want = _binary(y, pred, np.c_[1 - p_yes, p_yes], "yes")
    for metric in report.metrics:
        assert report.value(metric) == pytest.approx(want[metric], abs=TOLERANCE)
    assert report.classes == ["yes", "no"] and report.positive == "yes"


def test_a_column_of_positive_scores_is_binary_and_gives_predictions() -> None:
    """Without a prediction column the predicted class is the one with the highest score."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    score = np.round(np.clip(0.4 * y + 0.6 * rng.random(400), 0, 1), 2)  # some exactly 0.5
    report = performance(pd.DataFrame({"y": y, "score": score}), label="y", scores="score")
    want = _binary(y, (score > 0.5).astype(int), np.c_[1 - score, score], 1)
    for metric in report.metrics:
        assert report.value(metric) == pytest.approx(want[metric], abs=TOLERANCE)


def test_multiclass_metrics_are_macro_averages_equal_to_sklearn() -> None:
    rng = np.random.default_rng(4)
    rows = 2400
    y = rng.integers(0, 3, rows)
    logits = rng.normal(size=(rows, 3)) + 1.2 * np.eye(3)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    frame = pd.DataFrame(
        {
            "outcome": y,
            "output.predict": proba.argmax(axis=1),
            "output.predict_proba": list(proba),
            "band": rng.integers(0, 2, rows),
        }
    )
    report = performance(frame, window=800, slices=["band"])

    def expected(cell: pd.DataFrame) -> dict[str, float]:
        scores = np.vstack(cell["output.predict_proba"])  # type: ignore[call-overload]
        return _multiclass(cell["outcome"], cell["output.predict"], scores, [0, 1, 2])

    window_of = np.arange(rows) // 800
    checked = _check_every_cell(report, frame, window_of, _column_slices(frame), expected)
    assert checked == 3 * 3 * 8
    assert report.methods["precision"] == "bootstrap"  # macro averages are not proportions


def test_regression_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(5)
    rows = 3000
    y = rng.lognormal(3, 1, rows)
    frame = pd.DataFrame(
        {
            "outcome": y,
            "output.predict": y * rng.normal(1, 0.2, rows) + rng.normal(0, 2, rows),
            "region": rng.choice(["n", "s"], rows),
            "timestamp_ms": np.sort(rng.integers(0, 3 * 86_400_000, rows)),
        }
    )
    report = performance(frame, window="1D", slices=["region"])
    assert report.task == "regression"
    window_of = frame["timestamp_ms"].to_numpy() // 86_400_000
    checked = _check_every_cell(
        report,
        frame,
        window_of,
        _column_slices(frame),
        lambda cell: _regression(cell["outcome"], cell["output.predict"]),
    )
    assert checked == 3 * 3 * 4


@pytest.fixture(scope="module")
def acs_scored() -> pd.DataFrame:
    """A logistic regression trained on 2015 scores 3,000 people from each of 2016-2018."""
    acs = pd.read_parquet(ACS)
    features = ["AGEP", "SCHL", "MAR", "DIS", "SEX"]
    train = acs[acs["year"] == 2015].sample(5000, random_state=0)
    model = LogisticRegression(max_iter=500).fit(train[features].astype(float), train["employed"])
    later = (
        acs[acs["year"] > 2015].groupby("year").sample(3000, random_state=0).reset_index(drop=True)
    )
    proba = model.predict_proba(later[features].astype(float))
    return later.assign(
        pred=model.classes_[proba.argmax(axis=1)],
        proba=list(proba),
        when=pd.to_datetime(later["year"].astype(str) + "-07-01", utc=True),
    )


def test_acs_by_year_sex_and_race_equals_sklearn(acs_scored: pd.DataFrame) -> None:
    frame = acs_scored
    report = performance(
        frame,
        label="employed",
        prediction="pred",
        scores="proba",
        time="when",
        window="YS",
        slices=["SEX", "RAC1P"],
    )
    window_of = frame["year"].to_numpy() - 2016

    def expected(cell: pd.DataFrame) -> dict[str, float]:
        return _binary(cell["employed"], cell["pred"], np.vstack(cell["proba"]), 1)  # type: ignore[call-overload]

    checked = _check_every_cell(
        report, frame, window_of, _column_slices(frame), expected, label="employed"
    )
    assert checked >= 3 * 5 * 8  # all, two sexes and at least the two largest races
    starts = report.to_frame()["window_start"].drop_duplicates().dt.year.tolist()
    assert starts == [2016, 2017, 2018]
    assert 0.7 < report.value("accuracy") < 0.9
