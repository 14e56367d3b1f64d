"""The public surface changes only on purpose: each package's ``__all__`` is pinned here."""

from __future__ import annotations

import importlib

import pytest

EXPECTED = {
    "loopwise": [
        "ActiveRun", "DatasetVersion", "LoopwiseError", "ModelVersion", "PythonModel", "Run",
        "RunStatus", "__version__", "active_run", "compare_runs", "get_run", "init",
        "list_datasets", "load_dataset", "log_dataset", "metric_history", "models", "runs_frame",
        "search_runs", "shutdown", "start_run",
    ],
    "loopwise.audit": ["AuditRecord", "AuditVerification", "audit_log", "verify"],
    "loopwise.data": [
        "DatasetVersion", "content_hash", "list_datasets", "load_dataset", "log_dataset",
        "parse_dataset_ref",
    ],
    "loopwise.server": ["API_PREFIX", "create_app"],
    "loopwise.serving": ["create_serving_app"],
    "loopwise.store": [
        "ArtifactFile", "ArtifactStore", "AuditRecord", "AuditVerification", "DEFAULT_URI",
        "DatasetVersion", "Metric", "MetricEntry", "ModelVersion", "PredictionSegment", "Project",
        "RegisteredModel",
        "RemoteStore", "Role", "Run", "RunStatus", "Store", "Token", "open_store", "resolve_uri",
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
