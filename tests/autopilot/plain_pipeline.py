"""A retraining pipeline whose steps take the dataset ref as plain text (``data: str``) and
read it themselves: nothing links the data to the step that registers the candidate, so the
candidate's own lineage names no training data (the pattern docs/autopilot.md once showed)."""

from __future__ import annotations

import loopwise as lw
from loopwise.data import load_dataset
from loopwise.store import ModelVersion

FEATURES = ["x1", "x2"]


@lw.step
def fit(data: str) -> lw.Model:
    # scikit-learn is an optional extra ([sklearn]): only the tests that train need it.
    from sklearn.linear_model import LogisticRegression

    frame = load_dataset(data)
    fitted: lw.Model = LogisticRegression().fit(frame[FEATURES], frame["y"])
    return fitted


@lw.step
def register(model: lw.Model, data: str) -> ModelVersion:
    run = lw.active_run()
    assert run is not None
    example = load_dataset(data)[FEATURES].head(3)
    return run.log_model(model, name="synthetic", input_example=example)


@lw.pipeline
def retraining(data: str = "") -> None:
    register(fit(data), data)
