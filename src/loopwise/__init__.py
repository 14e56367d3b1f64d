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

from loopwise.context import init, shutdown
from loopwise.data import DatasetVersion, list_datasets, load_dataset, log_dataset
from loopwise.errors import LoopwiseError
from loopwise.registry import ModelVersion, models
from loopwise.registry.flavours.python import PythonModel
from loopwise.store import Run, RunStatus
from loopwise.store.migrate import loopwise_version
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

__version__ = loopwise_version()

__all__ = [
    "ActiveRun",
    "DatasetVersion",
    "LoopwiseError",
    "ModelVersion",
    "PythonModel",
    "Run",
    "RunStatus",
    "__version__",
    "active_run",
    "compare_runs",
    "get_run",
    "init",
    "list_datasets",
    "load_dataset",
    "log_dataset",
    "metric_history",
    "models",
    "runs_frame",
    "search_runs",
    "shutdown",
    "start_run",
]
