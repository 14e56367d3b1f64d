"""The pipeline the demo's autopilot retrains with: the labelled traffic it is given (a dataset
ref, as the autopilot passes it) -> typed ACS columns -> gradient boosting -> a registered
candidate version of ``employment`` (no alias moves: the autopilot decides what serves)."""

from __future__ import annotations

import functools
from typing import Any

import pandas as pd

import loopwise as lw
from loopwise.data import load_dataset
from loopwise.data.datasets import get_dataset
from loopwise.errors import require_extra
from loopwise.examples import ACS_FEATURES, ACS_LABEL, load_acs
from loopwise.pipelines.graph import pipeline
from loopwise.pipelines.ports import Model
from loopwise.pipelines.steps import step
from loopwise.store import DatasetVersion, ModelVersion

__all__ = ["acs_types", "employment_retraining", "fit", "labelled", "register"]

MODEL_NAME = "employment"


@functools.cache
def _dtypes() -> dict[str, Any]:
    frame = load_acs([2015]).head(1)
    return {c: frame[c].dtype for c in ACS_FEATURES}


def acs_types(frame: pd.DataFrame) -> pd.DataFrame:
    """ACS features as the survey codes them (``AGEP`` a number, the rest categories), from
    logged rows whose codes arrive as text."""
    typed = frame.copy()
    for column, dtype in _dtypes().items():
        if column not in typed.columns:
            continue
        if isinstance(dtype, pd.CategoricalDtype):
            typed[column] = typed[column].astype(str).astype(dtype)
        else:
            typed[column] = pd.to_numeric(typed[column]).astype(dtype)
    if ACS_LABEL in typed.columns:
        typed[ACS_LABEL] = pd.to_numeric(typed[ACS_LABEL]).astype("int64")
    return typed


@step
def labelled(data: str) -> DatasetVersion:
    """The dataset version ``data`` (``name/version``) the autopilot assembled."""
    return get_dataset(data)


@step
def fit(data: DatasetVersion, max_iter: int = 100, seed: int = 2015) -> Model:
    """Gradient boosting on the typed rows of ``data``."""
    require_extra("sklearn", "sklearn")
    from sklearn.ensemble import HistGradientBoostingClassifier

    frame = acs_types(load_dataset(data))
    model = HistGradientBoostingClassifier(
        max_iter=max_iter,
        learning_rate=0.1,
        categorical_features="from_dtype",
        early_stopping=False,
        random_state=seed,
    )
    model.fit(frame[ACS_FEATURES], frame[ACS_LABEL])
    run = lw.active_run()
    if run is not None:
        run.log_params(
            {
                "model": "HistGradientBoostingClassifier",
                "max_iter": max_iter,
                "train_rows": len(frame),
            }
        )
    fitted: Model = model
    return fitted


@step
def register(model: Model, data: DatasetVersion) -> ModelVersion:
    """Register ``model`` as the next version of ``employment``, trained on ``data``."""
    frame = acs_types(load_dataset(data).head(5))
    run = lw.active_run()
    if run is None:
        with lw.start_run(name="register-candidate") as run:
            run.use(data)
            return run.log_model(model, name=MODEL_NAME, input_example=frame[ACS_FEATURES])
    return run.log_model(
        model,
        name=MODEL_NAME,
        input_example=frame[ACS_FEATURES],
        description=f"retrained by the autopilot on {data.ref}",
    )


@pipeline
def employment_retraining(data: str = "", max_iter: int = 100, seed: int = 2015) -> None:
    """Retrain the employment model on labelled traffic ``data`` (a dataset ref)."""
    version = labelled(data=data)
    model = fit(version, max_iter=max_iter, seed=seed)
    register(model, version)
