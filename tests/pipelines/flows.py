"""Steps and pipelines that the pipeline tests run.

They live at module level in a real file because worker processes (the local executor) import
each step by its module and file, as they would a user's.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

import loopwise as lw
from loopwise.data.datasets import get_dataset
from loopwise.store import DatasetVersion

# -- small building blocks --------------------------------------------------------------------


@lw.step
def numbers(n: int) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(n, dtype="int64")})


@lw.step
def scale(frame: pd.DataFrame, factor: float) -> pd.DataFrame:
    return frame.assign(x=frame["x"] * factor)


@lw.step
def clipped(frame: pd.DataFrame, upper: int) -> pd.DataFrame:
    return frame.assign(x=frame["x"].clip(upper=upper))


@lw.step
def total(frame: pd.DataFrame) -> float:
    value = float(frame["x"].sum())
    run = lw.active_run()
    assert run is not None
    run.log_metrics({"sum": value})
    return value


@lw.step
def describe(frame: pd.DataFrame, label: str) -> dict[str, float]:
    return {"rows": float(len(frame)), "label_length": float(len(label))}


@lw.step
def double(value: float) -> float:
    return 2 * value


@lw.step
def rows(data: pd.DataFrame) -> int:
    return len(data)


@lw.step
def version_rows(version: DatasetVersion) -> int:
    # A DatasetVersion input gets the version itself, not its data.
    assert isinstance(version, DatasetVersion), type(version)
    return version.num_rows


@lw.step
def load_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


@lw.step(cache=False)
def read_counter(path: str) -> int:
    """Reads a live source on every run (cache=False)."""
    return int(Path(path).read_text())


@lw.step(cache=False)
def latest(name: str) -> DatasetVersion:
    """The newest version of a dataset, looked up on every run."""
    return get_dataset(name)


@lw.step(cache=False)
def noise() -> dict[str, float]:
    # Unseeded on purpose: the pipeline seeds `random` and NumPy's global generator.
    return {"numpy": float(np.random.rand()), "python": random.random()}


@lw.step
def fragile(frame: pd.DataFrame, flag: str) -> int:
    if os.path.exists(flag):
        raise RuntimeError(f"flag file {flag} is present")
    return len(frame)


@lw.step
def rendezvous(me: str, other: str, folder: str) -> str:
    """Returns only once the step named ``other`` has started too: proof that both ran at once."""
    Path(folder, me).touch()
    deadline = time.monotonic() + 60
    while not Path(folder, other).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{other} never started while {me} was running")
        time.sleep(0.02)
    return me


# -- pipelines --------------------------------------------------------------------------------


@lw.pipeline
def chain(n: int = 4, factor: float = 2.0, label: str = "a") -> None:
    """numbers -> scale -> total, and numbers -> describe (does not read factor)."""
    frame = numbers(n)
    total(scale(frame, factor))
    describe(frame, label)


@lw.pipeline
def cutoff(n: int = 4, upper: int = 100) -> None:
    total(clipped(numbers(n), upper))


@lw.pipeline
def from_csv(path: str) -> None:
    double(total(load_csv(path)))


@lw.pipeline
def live(path: str) -> None:
    double(read_counter(path))


@lw.pipeline
def newest(name: str) -> None:
    version = latest(name)
    rows(version)
    version_rows(version)


@lw.pipeline
def seeded() -> None:
    noise()


@lw.pipeline
def branches(flag: str, folder: str, n: int = 3) -> None:
    """A failing branch (fragile -> double) next to two branches that must run at once."""
    frame = numbers(n)
    double(fragile(frame, flag))
    rendezvous.named("left")("left", "right", folder)
    rendezvous.named("right")("right", "left", folder)


@lw.step(cache=False)
def stamp(n: int) -> float:
    return time.time() + n


@lw.pipeline
def resumable(flag: str, n: int = 3) -> None:
    frame = numbers(n)
    double(fragile(frame, flag))
    stamp(n)


# -- lineage: every kind of output ------------------------------------------------------------


@lw.step(outputs=("train", "valid"))
def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    cut = int(len(frame) * 0.75)
    return frame.iloc[:cut].reset_index(drop=True), frame.iloc[cut:].reset_index(drop=True)


@lw.step
def fit(train: pd.DataFrame) -> lw.Model:
    from sklearn.linear_model import LinearRegression

    return cast(lw.Model, LinearRegression().fit(train[["x"]], 2 * train["x"] + 1))


@lw.step
def score(model: lw.Model, valid: pd.DataFrame) -> dict[str, float]:
    error = float(np.abs(cast(Any, model).predict(valid[["x"]]) - (2 * valid["x"] + 1)).mean())
    run = lw.active_run()
    assert run is not None
    run.log_metrics({"mae": error})
    return {"rows": float(len(valid))}


@lw.step
def report(valid: pd.DataFrame) -> Path:
    path = Path(tempfile.mkdtemp(prefix="loopwise-test-report-")) / "report.txt"
    path.write_text(f"{len(valid)} rows\n")
    return path


@lw.pipeline
def reported(n: int = 4) -> None:
    data = numbers(n)
    report(data)
    rows(data)


@lw.pipeline
def lineage(n: int = 8) -> None:
    train, valid = split(numbers(n))
    score(fit(train), valid)
    report(valid)
    rows(valid)


# -- sweeps -----------------------------------------------------------------------------------


@lw.step
def loss(frame: pd.DataFrame, a: float, b: int) -> dict[str, float]:
    return {"loss": (a - 2.0) ** 2 + b + 0.0 * len(frame)}


@lw.pipeline
def tune(n: int = 5, a: float = 1.0, b: int = 0) -> None:
    loss(numbers(n), a, b)
