"""The monitor: one pass over a deployment's prediction log, window by window, into a report.

``monitor`` = ``load_inputs`` (the prediction log, outcomes, reference data, training profiles
and suites, the model: every read) + ``compute_report`` (pure: traffic, drift, skew, validation,
realised and estimated performance, and the alerts the rules call for) + storing those alerts
(deduplicated) and posting new ones to a webhook.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from loopwise.data import DatasetVersion
from loopwise.monitoring.alerts import raise_alert, send_webhook
from loopwise.monitoring.monitor.compute import compute_report
from loopwise.monitoring.monitor.load import load_inputs
from loopwise.monitoring.results import MonitorReport
from loopwise.monitoring.rules import AlertRules

__all__ = ["monitor"]

log = logging.getLogger(__name__)


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
    inputs = load_inputs(
        deployment,
        start_ms=start_ms,
        end_ms=end_ms,
        window=window,
        reference=reference,
        label=label,
        max_reference_rows=max_reference_rows,
        allow_pickle=allow_pickle,
    )
    report = compute_report(inputs, slices=slices, metrics=metrics, rules=rules)
    if raise_alerts:
        _raise_alerts(report, webhook)
    return report


def _raise_alerts(report: MonitorReport, webhook: str | None) -> None:
    """Store the report's alerts (each one gets its stored ``id``) and post new ones."""
    for alert in report.alerts:
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
