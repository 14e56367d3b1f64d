"""A ``lw.Model`` handed between steps with pickle: loaded only where the pipeline's own code
opted in (``allow_pickle=True`` on the step that made it or the step that takes it), never
because a stored record says the model is a pickle."""

from __future__ import annotations

import json
import pickle
import tempfile
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest

import loopwise as lw
from loopwise.context import Context
from loopwise.errors import PipelineFailedError, UnsafeModelError
from loopwise.pipelines.materialise import materialise
from loopwise.pipelines.ports import PortKind
from loopwise.pipelines.records import RECORD_TAG, read_record


class Doubler:
    """A custom model: no safe format, so a step must opt in to pickle it."""

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(pd.DataFrame(X)["x"], dtype=float) * 2


class Planted:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (open, (str(self.marker), "w"))


@lw.step
def numbers() -> pd.DataFrame:
    return pd.DataFrame({"x": [1.0, 2.0, 3.0]})


@lw.step(allow_pickle=True)
def fit_custom(frame: pd.DataFrame) -> lw.Model:
    return cast(lw.Model, Doubler())


@lw.step
def fit_linear(frame: pd.DataFrame) -> lw.Model:
    from sklearn.linear_model import LinearRegression

    return cast(lw.Model, LinearRegression().fit(frame[["x"]], 2 * frame["x"]))


@lw.step
def total(model: lw.Model, frame: pd.DataFrame, label: str) -> float:
    return float(np.sum(cast(Any, model).predict(frame[["x"]])))


@lw.pipeline
def custom(label: str = "a") -> None:
    frame = numbers()
    total(fit_custom(frame), frame, label)


@lw.pipeline
def linear(label: str = "a") -> None:
    frame = numbers()
    total(fit_linear(frame), frame, label)


def plant(ctx: Context, marker: Path) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "model.pkl").write_bytes(pickle.dumps(Planted(marker)))
        return ctx.store.artifacts.put_tree(Path(tmp))


def test_a_step_that_pickles_its_model_hands_it_to_the_next(ctx: Context) -> None:
    result = custom.run(executor="inline")
    assert result.output("total") == 12.0
    with pytest.raises(UnsafeModelError, match="allow_pickle=True"):
        result.output("fit_custom")  # outside the pipeline, the caller decides
    assert result.output("fit_custom", allow_pickle=True).predict({"x": [1.0]}).tolist() == [2.0]


def test_a_stored_record_alone_never_unpickles(ctx: Context, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    stored = {"kind": "model", "flavour": "python", "hash": plant(ctx, marker), "metadata": {}}
    with pytest.raises(UnsafeModelError):
        materialise(stored, PortKind.MODEL, ctx.store, ctx.project, tmp_path)
    assert not marker.exists()


def test_a_planted_cache_record_does_not_unpickle_in_a_step_that_did_not_opt_in(
    ctx: Context, tmp_path: Path
) -> None:
    """Someone who may tag runs points the cached ``fit_linear`` step at a pickle; the next
    run reuses the cache, and ``total`` (no opt-in anywhere) must refuse it."""
    marker = tmp_path / "pwned"
    first = linear.run(executor="inline")
    fit_run = first["fit_linear"].run_id
    assert fit_run is not None
    record = read_record(ctx.store, lw.get_run(fit_run).tags[RECORD_TAG])
    record["outputs"]["output"] = {
        **record["outputs"]["output"],
        "flavour": "python",
        "hash": plant(ctx, marker),
        "metadata": {},
    }
    digest, _ = ctx.store.artifacts.put_bytes(json.dumps(record, sort_keys=True).encode())
    ctx.store.set_tags(fit_run, {RECORD_TAG: digest})
    with pytest.raises(PipelineFailedError, match="UnsafeModelError"):
        linear.run({"label": "b"}, executor="inline")
    assert not marker.exists()
