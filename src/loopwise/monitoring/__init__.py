"""Monitoring: how a served model performs over time and by slice, with or without labels.

The offline, analysis side of Loopwise: it reads what the data plane (``loopwise.serving``)
logged and what the control plane (``loopwise.server``) stores, and computes reports on it.
``monitor/`` is one pass over a deployment (load, then a pure compute, then alerts);
``performance/`` measures (``realised``) or estimates (``estimation``, CBPE) model performance
per window and slice; ``report/`` draws a ``MonitorReport`` (``results``) as an HTML page.
Beside them: ``windows`` (cutting a frame into windows), ``skew`` (training-serving skew),
``distributions`` (each feature's reference and served distribution), ``outcomes`` (delayed
labels and the monitoring frame), ``rules`` (which findings open an alert) and ``alerts``
(storing them and posting them to a webhook).
"""

from loopwise.monitoring.alerts import (
    WebhookDelivery,
    list_alerts,
    raise_alert,
    resolve_alert,
    send_webhook,
    webhook_body,
)
from loopwise.monitoring.monitor import monitor
from loopwise.monitoring.outcomes import (
    OutcomeCoverage,
    join_outcomes,
    log_outcomes,
    monitoring_frame,
    outcome_coverage,
)
from loopwise.monitoring.performance import (
    EstimatedPerformance,
    MetricEstimate,
    PerformanceEstimator,
    PerformanceReport,
    compare_estimated_realised,
    performance,
    slice_minimums,
)
from loopwise.monitoring.report import render_report, write_report
from loopwise.monitoring.results import ColumnDistribution, MonitorReport
from loopwise.monitoring.rules import AlertRules
from loopwise.monitoring.skew import SkewReport, skew

__all__ = [
    "AlertRules",
    "ColumnDistribution",
    "EstimatedPerformance",
    "MetricEstimate",
    "MonitorReport",
    "OutcomeCoverage",
    "PerformanceEstimator",
    "PerformanceReport",
    "SkewReport",
    "WebhookDelivery",
    "compare_estimated_realised",
    "join_outcomes",
    "list_alerts",
    "log_outcomes",
    "monitor",
    "monitoring_frame",
    "outcome_coverage",
    "performance",
    "raise_alert",
    "render_report",
    "resolve_alert",
    "send_webhook",
    "skew",
    "slice_minimums",
    "webhook_body",
    "write_report",
]
