"""Monitoring: how a served model performs over time and by slice, with or without labels."""

from loopwise.monitoring.alerts import (
    WebhookDelivery,
    list_alerts,
    raise_alert,
    resolve_alert,
    send_webhook,
    webhook_body,
)
from loopwise.monitoring.estimated_vs_realised import compare_estimated_realised
from loopwise.monitoring.estimation import (
    EstimatedPerformance,
    MetricEstimate,
    PerformanceEstimator,
)
from loopwise.monitoring.monitor import monitor
from loopwise.monitoring.outcomes import (
    OutcomeCoverage,
    join_outcomes,
    log_outcomes,
    monitoring_frame,
    outcome_coverage,
)
from loopwise.monitoring.performance import PerformanceReport, performance, slice_minimums
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
