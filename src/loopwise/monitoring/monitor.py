"""The monitor: one pass over a deployment's prediction log, window by window, into a report.

For each window of served predictions it measures traffic, input drift against the reference
data, training-serving skew against the profile of the data each served version was trained on,
the training data's validation suite on the served inputs, realised performance where outcomes
have arrived (``log_outcomes``) and estimated performance where they have not. Then it applies
the alert rules (``rules.py``), stores the alerts (deduplicated) and sends new ones to a webhook.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from loopwise.context import current
from loopwise.data import DatasetVersion, attached_suite, dataset_profile, load_dataset
from loopwise.data.datasets import get_dataset
from loopwise.data.drift import drift
from loopwise.errors import InvalidArgumentError
from loopwise.monitoring.alerts import raise_alert, send_webhook
from loopwise.monitoring.distributions import distributions
from loopwise.monitoring.estimation import PerformanceEstimator
from loopwise.monitoring.outcomes import monitoring_frame
from loopwise.monitoring.performance import performance
from loopwise.monitoring.performance_windows import Windows, split_windows
from loopwise.monitoring.results import TABLES, MonitorReport
from loopwise.monitoring.rules import AlertRules, evaluate_rules
from loopwise.monitoring.skew import skew
from loopwise.store.prediction_segments import INPUT_PREFIX

__all__ = ["monitor"]

log = logging.getLogger(__name__)
SEED = 0
HELD_OUT_SPLITS = ("validation", "valid", "holdout", "test")


def _empty(name: str) -> pd.DataFrame:
    return pd.DataFrame({column: [] for column in TABLES[name]})


def _version_datasets(ctx: Any, model: str, version: int) -> list[DatasetVersion]:
    found = ctx.store.get_model_version(ctx.project, model, version)
    datasets = []
    for ref in found.datasets:
        name, _, number = ref.partition("/")
        datasets.append(ctx.store.get_dataset_version(ctx.project, name, int(number)))
    return datasets


def _training_dataset(datasets: list[DatasetVersion]) -> DatasetVersion | None:
    """The dataset a model version was trained on: its run's ``train`` split, else its first."""
    for candidate in datasets:
        if candidate.split == "train":
            return candidate
    return datasets[0] if datasets else None


def _held_out_dataset(datasets: list[DatasetVersion]) -> DatasetVersion | None:
    """Labelled data the version was not fitted on, to calibrate performance estimates."""
    for split in HELD_OUT_SPLITS:
        for candidate in datasets:
            if candidate.split == split:
                return candidate
    return None


def _windowed(table: pd.DataFrame, code: int, windows: Windows) -> pd.DataFrame:
    table.insert(0, "window_start", windows.start[code])
    table.insert(1, "window_end", windows.end[code])
    return table


def monitor(
    deployment: str,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    window: str | int | None = "1D",
    reference: str | DatasetVersion | None = None,
    label: str | None = None,
    slices: Sequence[str] = (),
    metrics: Sequence[str] | None = None,
    rules: AlertRules | None = None,
    raise_alerts: bool = True,
    webhook: str | None = None,
    max_reference_rows: int = 50_000,
    allow_pickle: bool = False,
) -> MonitorReport:
    """Monitor ``deployment`` over ``[start_ms, end_ms)`` of its prediction log.

    ``reference``: the data served inputs are compared with for drift (a dataset ref; default:
    the training data of the latest version served). ``label``: the label column of the
    reference; with it, performance is also estimated where outcomes are missing, calibrated on
    a held-out split the version's run used (split validation, valid, holdout or test), else
    on the reference. ``slices``: input
    columns to cut realised performance by. ``rules``: what raises alerts (default
    ``AlertRules()``); with ``raise_alerts`` they are stored, and new ones posted to ``webhook``.
    ``allow_pickle``: estimating performance loads the model; a pickled version loads only with
    this set (loading a pickle runs code: see ``lw.models.load``).
    """
    rules = AlertRules() if rules is None else rules
    rules.check()
    ctx = current()
    frame = monitoring_frame(deployment, start_ms, end_ms)
    generated_ms = int(time.time() * 1000)
    features = [c[len(INPUT_PREFIX) :] for c in frame.columns if c.startswith(INPUT_PREFIX)]
    inputs = frame[[INPUT_PREFIX + f for f in features]].set_axis(features, axis="columns")
    if frame.empty:
        report = MonitorReport(
            project=ctx.project,
            deployment=deployment,
            start_ms=start_ms or 0,
            end_ms=end_ms or generated_ms,
            window=str(window),
            generated_ms=generated_ms,
            reference="no predictions in this range",
            traffic=_empty("traffic"),
            drift=_empty("drift"),
            skew=_empty("skew"),
            validation=_empty("validation"),
            performance=_empty("performance"),
            estimated=_empty("estimated"),
        )
        return _alerted(report, rules, None, raise_alerts, webhook)
    model = str(frame["model"].iloc[-1])
    versions = sorted(int(v) for v in frame["version"].unique())
    datasets = {v: _version_datasets(ctx, model, v) for v in versions}
    trained_on = {v: _training_dataset(found) for v, found in datasets.items()}
    if reference is None:
        reference = trained_on[versions[-1]]
        if reference is None:
            raise InvalidArgumentError(
                f"{model}/{versions[-1]} records no training dataset to compare served inputs "
                "with; pass reference='<dataset>/<version>'.",
                parameter="reference",
            )
    reference_version = get_dataset(reference)
    reference_frame = load_dataset(reference_version)
    if len(reference_frame) > max_reference_rows:
        reference_frame = reference_frame.sample(max_reference_rows, random_state=SEED)
    missing = [f for f in features if f not in reference_frame.columns]
    if missing:
        raise InvalidArgumentError(
            f"The reference {reference_version.ref} lacks served input column(s) {missing}; "
            "pass the dataset the model was trained on as reference=.",
            parameter="reference",
        )
    windows = split_windows(frame, window, "timestamp_ms")
    traffic, drifts, skews, findings = [], [], [], []
    profiles = {
        v: dataset_profile(d) for v, d in trained_on.items() if d is not None and d.profile_digest
    }
    suites = {v: attached_suite(d.name) for v, d in trained_on.items() if d is not None}
    for code in range(len(windows.start)):
        rows = np.flatnonzero(windows.code == code)
        served = inputs.iloc[rows]
        served_versions = frame["version"].iloc[rows]
        traffic.append(
            {
                "window_start": windows.start[code],
                "window_end": windows.end[code],
                "rows": len(rows),
                "labelled": int(frame["outcome"].iloc[rows].notna().sum()),
                "versions": ", ".join(str(v) for v in sorted(served_versions.unique())),
            }
        )
        found = drift(reference_frame[features], served).to_frame()
        drifts.append(_windowed(found, code, windows))
        for version in sorted(served_versions.unique()):
            of_version = served[served_versions.to_numpy() == version]
            if int(version) in profiles:
                trained = profiles[int(version)]
                compared = [f for f in features if f in trained.columns]
                found = skew(trained, of_version, columns=compared, prefix="").to_frame()
                found.insert(0, "version", int(version))
                skews.append(_windowed(found, code, windows))
            attached = suites.get(int(version))
            if attached is not None:
                found = attached[0].validate(of_version).to_frame()
                findings.append(_windowed(found, code, windows))
    # Estimates calibrated on the training data itself would be optimistic (the model fits it
    # better than new data): prefer a held-out split the version recorded.
    held_out = _held_out_dataset(datasets[versions[-1]])
    calibration = reference_frame
    if label is not None and held_out is not None:
        calibration = load_dataset(held_out)
        if len(calibration) > max_reference_rows:
            calibration = calibration.sample(max_reference_rows, random_state=SEED)
    rows_per_window = int(np.median(np.bincount(windows.code)))
    realised, estimated, band = _performance(
        frame, features, window, rows_per_window, slices, metrics, calibration, label, model,
        versions[-1], allow_pickle,
    )  # fmt: skip
    report = MonitorReport(
        project=ctx.project,
        deployment=deployment,
        start_ms=int(frame["timestamp_ms"].min()) if start_ms is None else start_ms,
        end_ms=int(frame["timestamp_ms"].max()) + 1 if end_ms is None else end_ms,
        window=str(window),
        generated_ms=generated_ms,
        reference=f"{reference_version.ref}"
        + (" (training data)" if reference_version in trained_on.values() else "")
        + (f"; estimates calibrated on {held_out.ref}" if held_out and label else ""),
        traffic=pd.DataFrame(traffic),
        drift=_concat(drifts, "drift"),
        skew=_concat(skews, "skew"),
        validation=_concat(findings, "validation"),
        performance=realised,
        estimated=estimated,
        distributions=distributions(reference_frame[features], inputs),
    )
    return _alerted(report, rules, band, raise_alerts, webhook)


def _concat(parts: list[pd.DataFrame], name: str) -> pd.DataFrame:
    return pd.concat(parts, ignore_index=True) if parts else _empty(name)


def _performance(
    frame: pd.DataFrame,
    features: list[str],
    window: str | int | None,
    rows_per_window: int,
    slices: Sequence[str],
    metrics: Sequence[str] | None,
    reference: pd.DataFrame,
    label: str | None,
    model: str,
    version: int,
    allow_pickle: bool,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """Realised performance on labelled rows; estimated (CBPE) on all, when ``label`` is given."""
    bare = frame.rename(columns={INPUT_PREFIX + f: f for f in features})
    realised = _empty("performance")
    if bare["outcome"].notna().any():
        realised = performance(
            bare, window=window, slices=list(slices) or None, metrics=metrics
        ).to_frame()
    if label is None or "output.predict_proba" not in frame.columns:
        return realised, _empty("estimated"), None
    if label not in reference.columns:
        raise InvalidArgumentError(
            f"label={label!r} is not a column of the reference (it has "
            f"{list(reference.columns)[:20]}).",
            parameter="label",
        )
    from loopwise.registry import models

    loaded = models.load(f"{model}/{version}", allow_pickle=allow_pickle)
    scored = pd.DataFrame(
        {
            "outcome": reference[label].to_numpy(),
            "output.predict_proba": list(loaded.predict_proba(reference[features])),
        }
    )
    # The band an estimate may move in is learned from reference chunks as large as a typical
    # window: chunks much larger than the windows would make it too narrow.
    # At least 10 chunks for a usable spread; chunks smaller than a window widen the band
    # (fewer false alarms), never narrow it.
    chunks = int(min(50, max(10, len(scored) // max(rows_per_window, 1))))
    estimator = PerformanceEstimator(reference_chunks=chunks).fit(
        scored, prediction=None, time=None, classes=list(loaded.classes_)
    )
    estimate = estimator.estimate(frame, window=window, time="timestamp_ms").to_frame()
    return realised, estimate, estimate[estimate["alert"].fillna(False).astype(bool)]


def _alerted(
    report: MonitorReport,
    rules: AlertRules,
    band: pd.DataFrame | None,
    raise_alerts: bool,
    webhook: str | None,
) -> MonitorReport:
    alerts = evaluate_rules(report, rules, band)
    for alert in alerts:
        if not raise_alerts:
            continue
        stored, created = raise_alert(
            alert["rule"],
            fingerprint=f"{alert['rule']}:{report.deployment}:{alert['key']}",
            message=alert["message"],
            severity=alert["severity"],
            deployment=report.deployment,
            details=alert["details"],
            window_start_ms=alert["window_start_ms"],
            window_end_ms=alert["window_end_ms"],
        )
        alert["id"] = stored.id
        if created and webhook is not None:
            delivery = send_webhook(webhook, stored)
            if not delivery.ok:
                log.warning("alert %s was not delivered to the webhook: %s", stored.id, delivery)
    return MonitorReport(**{**report.__dict__, "alerts": alerts})
