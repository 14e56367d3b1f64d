"""The retraining pipelines of the autopilot suite's real streams, written as docs/autopilot.md
shows: the labelled traffic the autopilot assembled (a dataset ref) -> a model on every input
column -> a registered candidate of ``stream-model``. The baselines fit the same ``build``."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import loopwise as lw
from loopwise.data import load_dataset
from loopwise.data.datasets import get_dataset
from loopwise.store import DatasetVersion, ModelVersion

MODEL_NAME = "stream-model"
TARGET = "target"


def build(kind: str) -> Any:
    """An unfitted model: ``logistic`` (scaled logistic regression) or ``boosting``."""
    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    return HistGradientBoostingClassifier(max_iter=60, early_stopping=False, random_state=0)


def fit_frame(kind: str, frame: pd.DataFrame) -> Any:
    """``build(kind)`` fitted on ``frame``'s inputs (every column but ``target``)."""
    return build(kind).fit(frame.drop(columns=[TARGET]), frame[TARGET].astype("int64"))


@lw.step
def labelled(data: str) -> DatasetVersion:
    """The dataset version ``data`` the autopilot assembled (kept as the run's input)."""
    return get_dataset(data)


@lw.step
def fit(data: DatasetVersion, kind: str) -> lw.Model:
    model: lw.Model = fit_frame(kind, load_dataset(data))
    return model


@lw.step
def register(model: lw.Model, data: DatasetVersion) -> ModelVersion:
    example = load_dataset(data).drop(columns=[TARGET]).head(5)
    run = lw.active_run()
    if run is None:
        with lw.start_run(name="register-candidate") as run:
            run.use(data)
            return run.log_model(model, name=MODEL_NAME, input_example=example)
    return run.log_model(model, name=MODEL_NAME, input_example=example)


@lw.pipeline
def logistic_retraining(data: str = "") -> None:
    version = labelled(data=data)
    register(fit(version, kind="logistic"), version)


@lw.pipeline
def boosting_retraining(data: str = "") -> None:
    version = labelled(data=data)
    register(fit(version, kind="boosting"), version)
