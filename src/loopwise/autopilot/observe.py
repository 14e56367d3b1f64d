"""What the autopilot reads from a deployment's traffic: live rows of the prediction log with
their outcomes, per-row losses by version, and the monitor's verdict on a check window."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loopwise.autopilot.scoring import CLASSIFICATION, Predictions, metric_value, row_losses
from loopwise.errors import InvalidArgumentError
from loopwise.monitoring.monitor import monitor
from loopwise.monitoring.outcomes import monitoring_frame
from loopwise.monitoring.rules import AlertRules
from loopwise.store.prediction_segments import INPUT_PREFIX, OUTPUT_PREFIX

__all__ = ["Observation", "infer_metric", "inputs_of", "live_frame", "logged_losses", "observe"]

log = logging.getLogger(__name__)


def live_frame(deployment: str, start_ms: int, end_ms: int, shadow: bool = False) -> pd.DataFrame:
    """Predictions served in ``[start_ms, end_ms)`` with their outcomes; only the answers
    clients got (``shadow=False``) or only shadow answers (``shadow=True``)."""
    frame = monitoring_frame(deployment, max(start_ms, 0), end_ms, shadow=shadow)
    return frame.reset_index(drop=True)


def inputs_of(frame: pd.DataFrame) -> pd.DataFrame:
    """The model inputs of logged rows, under their own names."""
    columns = [c for c in frame.columns if c.startswith(INPUT_PREFIX)]
    return frame[columns].set_axis([c[len(INPUT_PREFIX) :] for c in columns], axis="columns")


def infer_metric(outcomes: pd.Series) -> str:
    """``accuracy`` for class labels (strings, bools, or whole numbers with at most 20
    values), ``rmse`` for other numbers."""
    values = outcomes.dropna()
    if not len(values) or not pd.api.types.is_numeric_dtype(values):
        return "accuracy"
    numbers = values.to_numpy(dtype=np.float64)
    whole = bool(np.all(numbers == np.round(numbers)))
    return "accuracy" if whole and len(np.unique(numbers)) <= 20 else "rmse"


def logged_losses(frame: pd.DataFrame, metric: str) -> np.ndarray[Any, Any]:
    """Per-row losses of the answers logged in ``frame`` (labelled rows only)."""
    if frame.empty or OUTPUT_PREFIX + "predict" not in frame.columns:
        return np.zeros(0)
    labelled = frame[frame["outcome"].notna()]
    predicted = labelled[OUTPUT_PREFIX + "predict"].to_numpy()
    proba = None
    classes = None
    if metric in ("log_loss", "brier"):
        proba = np.asarray(labelled[OUTPUT_PREFIX + "predict_proba"].tolist(), dtype=np.float64)
        # Probability columns follow the model's classes in sorted order (scikit-learn's
        # classes_); the classes seen in answers and outcomes name them when they all show.
        seen = sorted(set(labelled["outcome"].tolist()) | set(predicted.tolist()), key=str)
        numeric = all(isinstance(c, int | float) for c in seen)
        classes = sorted(seen) if numeric else seen
        if len(classes) != proba.shape[1]:
            classes = list(range(proba.shape[1]))
    return row_losses(
        metric, labelled["outcome"].to_numpy(), Predictions(predicted, proba, classes)
    )


@dataclass
class Observation:
    """One check window: traffic, realised and estimated performance, and input problems."""

    start_ms: int
    end_ms: int
    rows: int
    labelled: int
    realised: float | None
    realised_se: float | None
    """The standard error of the mean per-row loss behind ``realised``."""
    estimated: float | None
    drifted: list[str] = field(default_factory=list)
    drift_share: float = 0.0
    invalid: list[str] = field(default_factory=list)
    skewed: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    """Validation findings in words (at most ten)."""
    labelled_from_ms: int | None = None
    """Where the labelled rows judged were served from (None: ``start_ms``)."""
    labelled_until_ms: int | None = None
    """Just after the last labelled row judged was served (None: no labelled row)."""
    unchecked: str | None = None
    """Why the served inputs were not checked (no drift, skew, validation or estimated
    performance), e.g. the version names no training data; None when they were."""

    def to_json(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in self.__dict__.items()
        }


def observe(
    deployment: str,
    start_ms: int,
    end_ms: int,
    *,
    metric: str,
    label: str,
    min_labelled: int,
    frame: pd.DataFrame,
    allow_pickle: bool = False,
    labelled: pd.DataFrame | None = None,
    labelled_from_ms: int | None = None,
) -> Observation:
    """Judge one check window of live traffic (``frame``): the realised metric over the
    labelled rows of ``labelled`` (default: ``frame``'s; served since ``labelled_from_ms``,
    so that labels that come late are judged when they come), and the monitor's drift, skew,
    validation and estimated performance over the window."""
    judged = frame if labelled is None else labelled
    judged = judged[judged["outcome"].notna()] if len(judged) else judged
    losses = logged_losses(judged, metric)
    enough = len(losses) >= min_labelled
    realised = metric_value(metric, losses) if enough else None
    realised_se = float(np.std(losses, ddof=1) / math.sqrt(len(losses))) if enough else None
    since = start_ms if labelled_from_ms is None else labelled_from_ms
    until = int(judged["timestamp_ms"].max()) + 1 if len(losses) else None
    try:
        report = monitor(
            deployment,
            start_ms=max(start_ms, 0),
            end_ms=end_ms,
            window=None,
            label=label,
            rules=AlertRules(drift_share=None, skew=False, validation=False),
            raise_alerts=False,
            allow_pickle=allow_pickle,
        )
    except InvalidArgumentError as exc:
        if exc.details.get("parameter") != "reference":
            raise
        # A model logged without its training data: the metric can still be watched, but
        # there is nothing to compare inputs with (no drift, skew or validation). Said in
        # every check's summary and the log, never swallowed.
        log.warning("autopilot of %s: inputs not checked: %s", deployment, exc.message)
        return Observation(
            start_ms,
            end_ms,
            len(frame),
            len(losses),
            realised,
            realised_se,
            None,
            findings=[f"inputs not checked: {exc.message}"],
            labelled_from_ms=since,
            labelled_until_ms=until,
            unchecked=exc.message,
        )
    drifted = sorted(set(report.drift.loc[report.drift["drifted"].astype(bool), "column"]))
    tested = report.drift["column"].nunique()
    errors = report.validation[report.validation["severity"] == "error"]
    skewed = sorted(set(report.skew.loc[report.skew["skewed"].astype(bool), "column"]))
    estimated = None
    if metric in CLASSIFICATION and len(report.estimated):
        rows = report.estimated[report.estimated["metric"] == metric]["value"]
        estimated = float(rows.iloc[0]) if len(rows) and math.isfinite(rows.iloc[0]) else None
    findings = [
        f"{row['column']}: {row['rule']} expected {row['expected']}, observed {row['observed']} "
        f"({row['failing_rows']} rows)"
        for row in errors.head(10).to_dict("records")
    ]
    return Observation(
        start_ms,
        end_ms,
        rows=len(frame),
        labelled=len(losses),
        realised=realised,
        realised_se=realised_se,
        estimated=estimated,
        drifted=[str(c) for c in drifted],
        drift_share=len(drifted) / tested if tested else 0.0,
        invalid=sorted({str(c) for c in errors["column"]}),
        skewed=[str(c) for c in skewed],
        findings=findings,
        labelled_from_ms=since,
        labelled_until_ms=until,
    )
