"""Pipelines that tests/pipelines/test_reproduce.py records and then reproduces in a fresh process.

Module-level steps on small data, so that the reproducing process imports them from this file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

import loopwise as lw
from loopwise.store import DatasetVersion


@lw.step
def make_data(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, 3))
    y = (x @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.5, size=n) > 0).astype(int)
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y})


@lw.step(outputs=("train", "valid"))
def split(data: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    cut = int(len(data) * 0.75)
    return data.iloc[:cut], data.iloc[cut:]


@lw.step
def fit(train: pd.DataFrame, C: float) -> lw.Model:
    from sklearn.linear_model import LogisticRegression

    return cast(lw.Model, LogisticRegression(C=C).fit(train[["a", "b", "c"]], train["y"]))


@lw.step
def evaluate(model: lw.Model, valid: pd.DataFrame) -> dict[str, float]:
    proba = cast(Any, model).predict_proba(valid[["a", "b", "c"]])[:, 1]
    accuracy = float(((proba > 0.5) == valid["y"]).mean())
    run = lw.active_run()
    assert run is not None
    run.log_metric("mean_probability", float(proba.mean()))
    return {"accuracy": accuracy}


@lw.pipeline
def deterministic(n: int = 200, C: float = 1.0) -> None:
    train, valid = split(make_data(n))
    evaluate(fit(train, C=C), valid)


@lw.step
def draw(n: int) -> float:
    # NumPy's global generator: Loopwise seeds it per step from the pipeline's seed.
    return float(np.random.normal(size=n).sum())


@lw.pipeline
def seeded(n: int = 10) -> None:
    draw(n)


@lw.step
def noisy(base: float) -> float:
    # Noise from the operating system, which no seed controls: about 1e-6 of the value.
    value = base * (1 + 1e-6 * (1 + int.from_bytes(os.urandom(4), "big") / 2**32))
    run = lw.active_run()
    assert run is not None
    run.log_metric("value", value)
    return value


@lw.step
def report(value: float) -> dict[str, float]:
    return {"doubled": 2 * value}


@lw.pipeline
def jittery(base: float = 0.5) -> None:
    report(noisy(base))


@lw.step
def pick(name: str) -> DatasetVersion:
    # The latest version of a dataset, chosen by name when the step runs.
    return max(lw.list_datasets(name), key=lambda version: version.version)


@lw.step
def total(data: pd.DataFrame) -> float:
    return float(data["x"].sum())


@lw.pipeline
def by_name(name: str = "points") -> None:
    total(pick(name))


@lw.step
def file_total(table: Path) -> float:
    return float(pd.read_csv(table)["x"].sum())


@lw.pipeline
def from_file(table: str) -> None:
    file_total(table)
