"""The computing half of a monitoring pass: ``MonitorInputs`` in, ``MonitorReport`` out.

Window by window it measures traffic, input drift against the reference, training-serving skew
against the profile of the data each served version was trained on, that data's validation
suite on the served inputs, realised performance where outcomes have arrived and estimated
performance where they have not; then it evaluates the alert rules. A pure function: it reads
no store and no file, so tests can call it on frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pandas as pd

from loopwise.data.drift import drift
from loopwise.monitoring.distributions import distributions
from loopwise.monitoring.monitor.load import MonitorInputs, served_features
from loopwise.monitoring.performance import PerformanceEstimator, performance
from loopwise.monitoring.performance.scores import scored_rows
from loopwise.monitoring.results import TABLES, MonitorReport
from loopwise.monitoring.rules import AlertRules, evaluate_rules
from loopwise.monitoring.skew import skew
from loopwise.monitoring.windows import Windows, split_windows
from loopwise.store.prediction_segments import INPUT_PREFIX

__all__ = ["compute_report"]

SCORES = "output.predict_proba"


def _empty(name: str) -> pd.DataFrame:
    return pd.DataFrame({column: [] for column in TABLES[name]})


def _concat(parts: list[pd.DataFrame], name: str) -> pd.DataFrame:
    return pd.concat(parts, ignore_index=True) if parts else _empty(name)


def _windowed(table: pd.DataFrame, code: int, windows: Windows) -> pd.DataFrame:
    table.insert(0, "window_start", windows.start[code])
    table.insert(1, "window_end", windows.end[code])
    return table


def compute_report(
    inputs: MonitorInputs,
    *,
    slices: Sequence[str] = (),
    metrics: Sequence[str] | None = None,
    rules: AlertRules | None = None,
) -> MonitorReport:
    """The report on ``inputs``, with the alerts ``rules`` call for (not stored: ``monitor``
    stores them). ``slices`` and ``metrics`` mean what they mean for ``monitor``."""
    rules = AlertRules() if rules is None else rules
    rules.check()
    frame = inputs.predictions
    if frame.empty or inputs.reference is None:
        report = MonitorReport(
            project=inputs.project,
            deployment=inputs.deployment,
            start_ms=inputs.start_ms or 0,
            end_ms=inputs.end_ms or inputs.generated_ms,
            window=str(inputs.window),
            generated_ms=inputs.generated_ms,
            reference=inputs.reference_text,
            traffic=_empty("traffic"),
            drift=_empty("drift"),
            skew=_empty("skew"),
            validation=_empty("validation"),
            performance=_empty("performance"),
            estimated=_empty("estimated"),
        )
        return replace(report, alerts=evaluate_rules(report, rules, None))
    features = served_features(frame)
    inputs_served = frame[[INPUT_PREFIX + f for f in features]].set_axis(features, axis="columns")
    reference = inputs.reference[features]
    windows = split_windows(frame, inputs.window, "timestamp_ms")
    unscored = _unscored(frame)
    traffic, drifts, skews, findings = [], [], [], []
    for code in range(len(windows.start)):
        rows = np.flatnonzero(windows.code == code)
        served = inputs_served.iloc[rows]
        served_versions = frame["version"].iloc[rows]
        traffic.append(
            {
                "window_start": windows.start[code],
                "window_end": windows.end[code],
                "rows": len(rows),
                "labelled": int(frame["outcome"].iloc[rows].notna().sum()),
                "versions": ", ".join(str(v) for v in sorted(served_versions.unique())),
                "unscored": int(unscored[rows].sum()),
            }
        )
        found = drift(reference, served).to_frame()
        drifts.append(_windowed(found, code, windows))
        for version in sorted(served_versions.unique()):
            of_version = served[served_versions.to_numpy() == version]
            if int(version) in inputs.profiles:
                trained = inputs.profiles[int(version)]
                compared = [f for f in features if f in trained.columns]
                found = skew(trained, of_version, columns=compared, prefix="").to_frame()
                found.insert(0, "version", int(version))
                skews.append(_windowed(found, code, windows))
            suite = inputs.suites.get(int(version))
            if suite is not None:
                found = suite.validate(of_version).to_frame()
                findings.append(_windowed(found, code, windows))
    rows_per_window = int(np.median(np.bincount(windows.code)))
    realised, estimated, band = _performance(
        inputs, features, rows_per_window, slices, metrics, bool(unscored.all())
    )
    report = MonitorReport(
        project=inputs.project,
        deployment=inputs.deployment,
        start_ms=int(frame["timestamp_ms"].min()) if inputs.start_ms is None else inputs.start_ms,
        end_ms=int(frame["timestamp_ms"].max()) + 1 if inputs.end_ms is None else inputs.end_ms,
        window=str(inputs.window),
        generated_ms=inputs.generated_ms,
        reference=inputs.reference_text,
        traffic=pd.DataFrame(traffic),
        drift=_concat(drifts, "drift"),
        skew=_concat(skews, "skew"),
        validation=_concat(findings, "validation"),
        performance=realised,
        estimated=estimated,
        distributions=distributions(reference, inputs_served),
    )
    return replace(report, alerts=evaluate_rules(report, rules, band))


def _performance(
    inputs: MonitorInputs,
    features: list[str],
    rows_per_window: int,
    slices: Sequence[str],
    metrics: Sequence[str] | None,
    none_scored: bool,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """Realised performance on labelled rows; estimated (CBPE) on all that hold scores, when
    the inputs hold a label, calibration data and the model. Rows without scores count for
    the label-based metrics only (``performance`` and ``estimate`` leave them out of the rest)."""
    frame, window = inputs.predictions, inputs.window
    bare = frame.rename(columns={INPUT_PREFIX + f: f for f in features})
    realised = _empty("performance")
    if bare["outcome"].notna().any():
        realised = performance(
            bare, window=window, slices=list(slices) or None, metrics=metrics
        ).to_frame()
    label, calibration, model = inputs.label, inputs.calibration, inputs.model
    if label is None or calibration is None or model is None:
        return realised, _empty("estimated"), None
    if SCORES not in frame.columns or none_scored:
        return realised, _empty("estimated"), None
    scored = pd.DataFrame(
        {
            "outcome": calibration[label].to_numpy(),
            SCORES: list(model.predict_proba(calibration[features])),
        }
    )
    # The band an estimate may move in is learned from reference chunks as large as a typical
    # window: chunks much larger than the windows would make it too narrow.
    # At least 10 chunks for a usable spread; chunks smaller than a window widen the band
    # (fewer false alarms), never narrow it.
    chunks = int(min(50, max(10, len(scored) // max(rows_per_window, 1))))
    estimator = PerformanceEstimator(reference_chunks=chunks).fit(
        scored, prediction=None, time=None, classes=list(model.classes_)
    )
    estimate = estimator.estimate(frame, window=window, time="timestamp_ms").to_frame()
    return realised, estimate, estimate[estimate["alert"].fillna(False).astype(bool)]


def _unscored(frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Rows of a classifier's log without class probabilities (logged by a route that computed
    ``predict`` only); none when the log holds no probabilities at all (e.g. a regressor)."""
    if SCORES not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return ~scored_rows(frame, SCORES)
