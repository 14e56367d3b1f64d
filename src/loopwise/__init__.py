"""Loopwise: take machine learning models from experiment to autonomous operation.

The SDK in one glance::

    import loopwise as lw

    lw.init(project="employment")
    train = lw.log_dataset(df, name="acs-ma", split="train")
    with lw.start_run(name="gbdt") as run:
        run.log_params(params)
        run.use(train)
        run.log_metrics({"auc": auc})
        mv = run.log_model(model, name="employment", input_example=X[:5])
    lw.models.set_alias("employment", mv.version, "production")
    lw.models.load("employment@production").predict(X_new)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    __version__: str

    from loopwise import autopilot, deployments
    from loopwise.context import init, shutdown
    from loopwise.data import DatasetVersion, list_datasets, load_dataset, log_dataset
    from loopwise.errors import LoopwiseError
    from loopwise.monitoring import log_outcomes
    from loopwise.pipelines import Model, Pipeline, pipeline, step
    from loopwise.registry import ModelVersion, models
    from loopwise.registry.flavours.python import PythonModel
    from loopwise.store import Run, RunStatus
    from loopwise.tracking import (
        ActiveRun,
        active_run,
        compare_runs,
        get_run,
        metric_history,
        runs_frame,
        search_runs,
        start_run,
    )

# The SDK's names are imported on first use (PEP 562), so that `import loopwise.server` or a
# CLI command that never touches data does not load pandas and PyArrow (~100 MB, ~1 s).
_LAZY = {
    "init": "loopwise.context",
    "shutdown": "loopwise.context",
    "DatasetVersion": "loopwise.data",
    "list_datasets": "loopwise.data",
    "load_dataset": "loopwise.data",
    "log_dataset": "loopwise.data",
    "autopilot": "loopwise.autopilot",
    "deployments": "loopwise.deployments",
    "LoopwiseError": "loopwise.errors",
    "log_outcomes": "loopwise.monitoring",
    "Model": "loopwise.pipelines",
    "Pipeline": "loopwise.pipelines",
    "pipeline": "loopwise.pipelines",
    "step": "loopwise.pipelines",
    "ModelVersion": "loopwise.registry",
    "models": "loopwise.registry",
    "PythonModel": "loopwise.registry.flavours.python",
    "Run": "loopwise.store",
    "RunStatus": "loopwise.store",
    "ActiveRun": "loopwise.tracking",
    "active_run": "loopwise.tracking",
    "compare_runs": "loopwise.tracking",
    "get_run": "loopwise.tracking",
    "metric_history": "loopwise.tracking",
    "runs_frame": "loopwise.tracking",
    "search_runs": "loopwise.tracking",
    "start_run": "loopwise.tracking",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from loopwise.version import loopwise_version

        globals()[name] = version = loopwise_version()
        return version
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loopwise' has no attribute {name!r}")
    imported = importlib.import_module(module)
    # A subpackage (``lw.deployments``) is the module itself, not a name inside it.
    value = imported if module == f"{__name__}.{name}" else getattr(imported, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"__version__"})


__all__ = [
    "ActiveRun",
    "DatasetVersion",
    "LoopwiseError",
    "Model",
    "ModelVersion",
    "Pipeline",
    "PythonModel",
    "Run",
    "RunStatus",
    "__version__",
    "active_run",
    "autopilot",
    "compare_runs",
    "deployments",
    "get_run",
    "init",
    "list_datasets",
    "load_dataset",
    "log_dataset",
    "log_outcomes",
    "metric_history",
    "models",
    "pipeline",
    "runs_frame",
    "search_runs",
    "shutdown",
    "start_run",
    "step",
]
