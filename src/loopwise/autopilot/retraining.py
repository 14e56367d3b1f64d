"""Retraining and gating: the labelled traffic a candidate learns from, the pipeline that trains
it, and the gates it must pass before it takes any traffic."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import loopwise as lw
from loopwise.autopilot.lineage import training_dataset, with_training_data
from loopwise.autopilot.observe import inputs_of, live_frame
from loopwise.autopilot.policy import Policy, duration_ms
from loopwise.autopilot.scoring import (
    compare_paired,
    metric_value,
    predict,
    prediction_shift,
    row_losses,
)
from loopwise.autopilot.settings import OperatorSettings, check_pipeline_allowed
from loopwise.autopilot.state import State
from loopwise.context import current
from loopwise.data import attach_suite, attached_suite
from loopwise.data.datasets import load_dataset
from loopwise.pipelines.refs import load_pipeline
from loopwise.store import DatasetVersion, ModelVersion

__all__ = ["GateResult", "TrainingData", "gate", "run_pipeline", "training_data"]


@dataclass
class TrainingData:
    """The labelled traffic a retrain uses: the part it trains on and the latest part held out."""

    train: DatasetVersion | None
    """None when the data are invalid (nothing is logged then)."""
    holdout: DatasetVersion | None
    start_ms: int
    end_ms: int
    rows: int
    invalid: list[str] = field(default_factory=list)
    """Validation findings of production's training-data suite on it (empty: valid)."""


def _production_suite(model: str, version: int) -> Any:
    """The validation suite attached to the training data of ``model/version`` (or None)."""
    ctx = current()
    trained_on = training_dataset(ctx.store.get_model_version(ctx.project, model, version))
    attached = None if trained_on is None else attached_suite(trained_on.name)
    return None if attached is None else attached[0]


def _findings(suite: Any, frame: pd.DataFrame) -> list[str]:
    """The suite's error findings on ``frame``'s columns, in words (at most ten)."""
    columns = {str(getattr(e, "column", "")) for e in suite.expectations}
    chosen = [c for c in frame.columns if c in columns]
    if not chosen:
        return []
    report = suite.validate(frame[chosen])
    return [] if report.ok else [str(f) for f in report.errors][:10]


def first_ms(frame: pd.DataFrame) -> int:
    return int(frame["timestamp_ms"].iloc[0]) if len(frame) else 0


def last_ms(frame: pd.DataFrame) -> int:
    return int(frame["timestamp_ms"].iloc[-1]) + 1 if len(frame) else 0


def training_data(
    deployment: str, policy: Policy, state: State, now_ms: int, model: str
) -> TrainingData | None:
    """The labelled traffic to retrain on (None: fewer than ``retrain.min_rows`` rows).

    It starts at the estimated change point of the current drop (never mixing the old
    regime into the new), within ``retrain.window``; quarantined ranges are left out. The
    latest ``holdout_fraction`` of the rows (by time) is held out for the gates.
    """
    retrain = policy.retrain
    earliest = now_ms - duration_ms(retrain.window, "retrain.window")
    frame = live_frame(deployment, earliest, now_ms)
    frame = frame[frame["outcome"].notna()]
    for start, end in state.quarantine:
        stamps = frame["timestamp_ms"]
        frame = frame[(stamps < start) | (stamps >= end)]
    frame = frame.sort_values("timestamp_ms", kind="stable")
    if state.drop_since_ms is not None:
        frame = frame[frame["timestamp_ms"] >= state.drop_since_ms]
    if len(frame) < retrain.min_rows:
        return None
    data = inputs_of(frame).assign(**{policy.label: frame["outcome"].to_numpy()})
    data = data.reset_index(drop=True)
    cut = len(data) - max(1, round(len(data) * retrain.holdout_fraction))
    suite = _production_suite(model, state.production) if state.production is not None else None
    checked = suite is not None and policy.gates.validate_data
    invalid = _findings(suite, data) if checked else []
    name = f"{deployment}-retrain"
    if invalid:
        return TrainingData(None, None, first_ms(frame), last_ms(frame), len(data), invalid)
    if suite is not None and attached_suite(name) is None:
        # What production was validated with carries over to what replaces it, so that the
        # monitor keeps checking served inputs after a promotion.
        attach_suite(name, suite, on_failure="warn")
    what = f"labelled traffic of {deployment}"
    train = lw.log_dataset(
        data.iloc[:cut].reset_index(drop=True),
        name=name,
        split="train",
        description=f"{what}, the part a candidate trains on",
    )
    holdout = lw.log_dataset(
        data.iloc[cut:].reset_index(drop=True),
        name=f"{deployment}-retrain-holdout",
        split="holdout",
        description=f"{what}, the latest part, held out of training to judge candidates",
    )
    return TrainingData(train, holdout, first_ms(frame), last_ms(frame), len(data))


def run_pipeline(
    policy: Policy, train_ref: str, settings: OperatorSettings, *, holdout_ref: str | None = None
) -> tuple[ModelVersion, str]:
    """Run the retraining pipeline on ``train_ref``; the candidate and the pipeline run's id.
    PermissionDeniedError, before anything is imported, unless ``settings`` allow it.

    The candidate names ``train_ref`` (and ``holdout_ref``) as its training data even when the
    pipeline recorded none (``lineage.with_training_data``). Its steps are cached, so running
    it again after an interruption redoes nothing that finished (the candidate registered
    before is the one that comes back)."""
    check_pipeline_allowed(policy.retrain.pipeline, settings)
    found = load_pipeline(policy.retrain.pipeline)
    params = {**policy.retrain.params, policy.retrain.data_param: train_ref}
    result = found.run(params, executor="inline")
    candidate = result.output(policy.retrain.candidate_step)
    if not isinstance(candidate, ModelVersion):
        raise TypeError(
            f"step {policy.retrain.candidate_step!r} of {policy.retrain.pipeline} returned "
            f"{type(candidate).__name__}, not a registered model version"
        )
    return with_training_data(candidate, train_ref, holdout_ref), str(result.run_id)


@dataclass
class GateResult:
    """Every gate's verdict on a candidate, with the numbers behind it."""

    passed: bool
    candidate_metric: float
    production_metric: float
    rows: int
    checks: dict[str, Any]
    failed: list[str]


def _slice_checks(
    policy: Policy, metric: str, frame: pd.DataFrame, losses: np.ndarray[Any, Any]
) -> tuple[dict[str, Any], list[str]]:
    found: dict[str, Any] = {}
    failed: list[str] = []
    for column, floor in policy.gates.slice_minimums.items():
        if column not in frame.columns:
            failed.append(f"slice column {column} is not among the inputs")
            continue
        values = frame[column].astype(str).to_numpy()
        worst: tuple[str, float] | None = None
        for value in np.unique(values):
            chosen = losses[values == value]
            if len(chosen) < policy.gates.min_slice_rows:
                continue
            score = metric_value(metric, chosen)
            below = score < floor if policy.higher_is_better(metric) else score > floor
            if worst is None or (score < worst[1]) == policy.higher_is_better(metric):
                worst = (str(value), score)
            if below:
                failed.append(f"{column}={value}: {metric} {score:.4f} beyond the floor {floor}")
        found[column] = {"floor": floor, "worst": worst}
    return found, failed


def _latency_ms(model: Any, frame: pd.DataFrame, repeats: int = 15) -> float:
    row = frame.iloc[:1]
    model.predict(row)  # warm
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict(row)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def gate(
    policy: Policy,
    metric: str,
    model: str,
    production: int,
    candidate: int,
    holdout_ref: str,
    *,
    allow_pickle: bool = False,
) -> GateResult:
    """Judge ``candidate`` against ``production`` on the held-out latest traffic
    (``allow_pickle``: the operator lets pickled versions load)."""
    name, _, number = holdout_ref.partition("/")
    holdout = load_dataset(f"{name}/{number}")
    features = holdout.drop(columns=[policy.label])
    labels = holdout[policy.label].to_numpy()
    # allow_pickle is the operator's, never a stored record's.
    prod_model = lw.models.load(f"{model}/{production}", allow_pickle=allow_pickle)
    cand_model = lw.models.load(f"{model}/{candidate}", allow_pickle=allow_pickle)
    prod_pred, cand_pred = (
        predict(prod_model, features, metric),
        predict(cand_model, features, metric),
    )
    comparison = compare_paired(
        metric,
        labels,
        prod_pred,
        cand_pred,
        min_improvement=policy.gates.min_improvement,
        alpha=policy.gates.alpha,
    )
    checks: dict[str, Any] = {"holdout": {"dataset": holdout_ref, **comparison.to_json()}}
    # How far the candidate's answers may move from production's: as far as they do here.
    shift = prediction_shift(prod_pred.predicted, cand_pred.predicted)
    checks["prediction_shift"] = None if math.isnan(shift) else shift
    failed = (
        []
        if comparison.passed
        else [
            f"not better than production on the holdout ({comparison.candidate:.4f} vs "
            f"{comparison.baseline:.4f}, p = {comparison.p_value:.3g})"
        ]
    )
    slices, slice_failures = _slice_checks(
        policy, metric, features, row_losses(metric, labels, cand_pred)
    )
    checks["slices"] = slices
    failed += slice_failures
    if policy.gates.latency_ms is not None:
        latency = _latency_ms(cand_model, features)
        checks["latency_ms"] = {"median": latency, "budget": policy.gates.latency_ms}
        if latency > policy.gates.latency_ms:
            failed.append(f"median latency {latency:.2f} ms over {policy.gates.latency_ms} ms")
    floor = policy.monitor.minimum
    if floor is not None and math.isfinite(comparison.candidate):
        low = (
            comparison.candidate < floor
            if policy.higher_is_better(metric)
            else comparison.candidate > floor
        )
        checks["minimum"] = {"value": comparison.candidate, "minimum": floor, "met": not low}
    return GateResult(
        not failed, comparison.candidate, comparison.baseline, comparison.rows, checks, failed
    )
