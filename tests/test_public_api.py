"""The public surface changes only on purpose: each package's ``__all__`` is pinned here."""

from __future__ import annotations

import importlib

import pytest

EXPECTED = {
    "loopwise": [
        "ActiveRun", "DatasetVersion", "LoopwiseError", "ModelVersion", "PythonModel", "Run",
        "RunStatus", "__version__", "active_run", "compare_runs", "get_run", "init",
        "list_datasets", "load_dataset", "log_dataset", "log_outcomes", "metric_history", "models",
        "runs_frame",
        "search_runs", "shutdown", "start_run",
        # pipelines
        "Model", "Pipeline", "pipeline", "step",
        # deployments and the autopilot
        "autopilot", "deployments",
    ],
    "loopwise.autopilot": [
        "OperatorSettings", "Policy", "Replayer", "State", "Tick", "get_policy", "history",
        "parse_policy", "resume", "run_all",
        "run_once", "set_policy", "state",
    ],
    "loopwise.audit": ["AuditRecord", "AuditVerification", "audit_log", "verify"],
    "loopwise.data": [
        "DatasetVersion", "content_hash", "get_dataset", "list_datasets", "load_dataset",
        "log_dataset", "parse_dataset_ref",
        # validation suites
        "AllowedCategories", "ColumnPresent", "ColumnType", "Custom", "Finding", "Finite",
        "MeanBetween", "NotNull", "Range", "RowCount", "Suite", "Unique", "ValidationReport",
        "attach_suite", "attached_suite", "detach_suite", "infer_suite", "validate",
        # profiles
        "ColumnProfile", "Profile", "dataset_profile", "profile",
    ],
    "loopwise.deployments": [
        "Deployment", "DeploymentChange", "TrafficPlan", "assign", "create", "get", "history",
        "list_deployments", "rollback", "set_plan",
    ],
    "loopwise.monitoring": [
        "AlertRules", "ColumnDistribution", "EstimatedPerformance", "MetricEstimate",
        "MonitorReport", "OutcomeCoverage", "PerformanceEstimator", "PerformanceReport",
        "SkewReport", "WebhookDelivery", "compare_estimated_realised", "join_outcomes",
        "list_alerts", "log_outcomes", "monitor", "monitoring_frame", "outcome_coverage",
        "performance", "raise_alert", "render_report", "resolve_alert", "send_webhook", "skew",
        "slice_minimums", "webhook_body", "write_report",
    ],
    "loopwise.pipelines": [
        "Choice", "Graph", "IntUniform", "LogUniform", "Model", "Pipeline", "PipelineResult",
        "Step", "StepEvent", "StepResult", "StepState", "SweepResult", "Uniform",
        "load_pipeline", "output", "pipeline", "run", "step", "sweep",
        # reproduce
        "Reproduction", "reproduce",
    ],
    "loopwise.server": ["API_PREFIX", "create_app"],
    "loopwise.serving": ["ServeOptions", "create_serving_app", "run"],
    "loopwise.store": [
        "ArtifactFile", "ArtifactStore", "AuditRecord", "AuditVerification",
        "AutopilotDecision", "AutopilotPolicy", "DEFAULT_URI",
        "Alert", "DatasetSuite", "DatasetVersion", "Deployment", "DeploymentChange", "Metric",
        "MetricEntry", "ModelVersion",
        "Outcome", "OutcomeReceipt", "PredictionSegment", "Project",
        "RegisteredModel",
        "RemoteStore", "Role", "Run", "RunStatus", "Store", "Token", "TrafficPlan", "open_store",
        "resolve_uri",
        "upgrade_store",
    ],
    "loopwise.tracking": [
        "ActiveRun", "active_run", "capture_environment", "compare_runs", "get_run",
        "metric_history", "runs_frame", "search_runs", "start_run",
    ],
}  # fmt: skip


@pytest.mark.parametrize("module", sorted(EXPECTED))
def test_exported_names(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(EXPECTED[module])
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} is in __all__ but missing"


def test_sdk_verbs_are_reachable_from_the_top() -> None:
    import loopwise as lw

    for verb in (
        "load",
        "get",
        "set_alias",
        "delete_alias",
        "versions",
        "list_models",
        "log_model",
    ):
        assert callable(getattr(lw.models, verb))
    for verb in ("create", "get", "list_deployments", "set_plan", "history", "rollback", "assign"):
        assert callable(getattr(lw.deployments, verb))
