"""The retraining pipeline of the autopilot tests: a linear model on x1 and x2 of the labelled
traffic the autopilot passes in (a dataset ref), registered as the next version of ``name``."""

from __future__ import annotations

import loopwise as lw
from loopwise.data import load_dataset
from loopwise.data.datasets import get_dataset
from loopwise.store import DatasetVersion, ModelVersion

FEATURES = ["x1", "x2"]


@lw.step
def load(data: str) -> DatasetVersion:
    return get_dataset(data)


@lw.step
def fit(data: DatasetVersion, task: str = "classification") -> lw.Model:
    # scikit-learn is an optional extra ([sklearn]): only the tests that train need it.
    from sklearn.linear_model import LinearRegression, LogisticRegression

    frame = load_dataset(data)
    model = LogisticRegression() if task == "classification" else LinearRegression()
    model.fit(frame[FEATURES], frame["y"])
    fitted: lw.Model = model
    return fitted


@lw.step
def register(model: lw.Model, data: DatasetVersion, name: str = "synthetic") -> ModelVersion:
    frame = load_dataset(data)
    run = lw.active_run()
    assert run is not None
    return run.log_model(model, name=name, input_example=frame[FEATURES].head(3))


@lw.pipeline
def retraining(data: str = "", task: str = "classification", name: str = "synthetic") -> None:
    version = load(data)
    register(fit(version, task=task), version, name=name)
