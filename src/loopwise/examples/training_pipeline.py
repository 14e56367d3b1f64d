"""The demo's training as a pipeline: load -> validate -> split -> train candidates in parallel
-> evaluate (with slices by SEX and RAC1P) -> register the best by validation AUC.

The steps are module-level so that worker processes (local executor, Ray) can import them.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import loopwise as lw
from loopwise.data import AllowedCategories, Suite, infer_suite, load_dataset
from loopwise.errors import InvalidArgumentError, ValidationFailedError, require_extra
from loopwise.examples import ACS_FEATURES, ACS_LABEL, load_acs
from loopwise.monitoring.performance import performance
from loopwise.pipelines.graph import pipeline
from loopwise.pipelines.ports import Model
from loopwise.pipelines.steps import step
from loopwise.store import DatasetVersion, ModelVersion

__all__ = [
    "CANDIDATES",
    "MODEL_NAME",
    "QUICK_ROWS",
    "SEED",
    "SLICES",
    "candidate",
    "employment_training",
    "evaluate",
    "load",
    "register",
    "sample_years",
    "score",
    "slice_metric",
    "split",
    "train",
    "training_suite",
    "validate",
]

MODEL_NAME = "employment"
SEED = 2015
QUICK_ROWS = 5_000
"""Rows per survey year in quick mode."""
CANDIDATES = ("logistic-regression", "gradient-boosting")
SLICES = ("SEX", "RAC1P")
# performance() metric names -> the names the demo has always logged
_METRICS = {"accuracy": "accuracy", "roc_auc": "auc", "f1": "f1", "log_loss": "log_loss"}


def sample_years(frame: pd.DataFrame, quick: bool, seed: int) -> pd.DataFrame:
    """In quick mode, ``QUICK_ROWS`` random people of each survey year; else ``frame`` itself."""
    if not quick:
        return frame
    return frame.groupby("year", group_keys=False).sample(n=QUICK_ROWS, random_state=seed)


def slice_metric(column: str, value: str, metric: str) -> str:
    """The name a slice's metric is logged under, e.g. ``slice/SEX:1/accuracy``."""
    return f"slice/{column}:{value}/{metric}"


def candidate(kind: str, quick: bool, seed: int) -> tuple[Any, dict[str, Any]]:
    """An unfitted candidate model and the params that describe it."""
    require_extra("sklearn", "sklearn")
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if kind == "logistic-regression":
        categorical = [c for c in ACS_FEATURES if c != "AGEP"]
        encode = ColumnTransformer(
            [
                ("onehot", OneHotEncoder(handle_unknown="ignore"), categorical),
                ("scale", StandardScaler(), ["AGEP"]),
            ]
        )
        model = LogisticRegression(max_iter=300 if quick else 1000, C=1.0)
        params = {"model": "LogisticRegression", "C": 1.0, "encoding": "one-hot"}
        return Pipeline([("encode", encode), ("model", model)]), params
    if kind == "gradient-boosting":
        iterations = 50 if quick else 200
        boosting = HistGradientBoostingClassifier(
            max_iter=iterations,
            learning_rate=0.1,
            categorical_features="from_dtype",
            early_stopping=False,
            random_state=seed,
        )
        params = {
            "model": "HistGradientBoostingClassifier",
            "max_iter": iterations,
            "learning_rate": 0.1,
        }
        return boosting, params
    raise InvalidArgumentError(
        f"kind: expected one of {list(CANDIDATES)}, got {kind!r}.", parameter="kind"
    )


def training_suite(frame: pd.DataFrame) -> Suite:
    """What the training year teaches about the data: types, no nulls, ranges with slack, and
    for each coded column every code of its categorical dtype (the survey's code book), since
    a sample of a year can miss rare codes that are perfectly valid."""
    suite = infer_suite(frame)
    widened: list[Any] = []
    for expectation in suite.expectations:
        column = getattr(expectation, "column", None)
        if isinstance(expectation, AllowedCategories) and column is not None:
            dtype = frame[column].dtype
            if isinstance(dtype, pd.CategoricalDtype):
                codes = [str(c) for c in dtype.categories]
                expectation = AllowedCategories(column=column, values=list(codes))
        widened.append(expectation)
    return Suite(widened)


def score(model: Any, frame: pd.DataFrame, slices: Sequence[str] = ()) -> pd.DataFrame:
    """Accuracy, AUC, F1 and log loss of ``model`` on ``frame``, overall (slice ``all``) and per
    value of each column in ``slices``: columns slice, slice_value, metric, value, labelled."""
    proba = model.predict_proba(frame[ACS_FEATURES])[:, 1]
    scored = pd.DataFrame(
        {
            "label": frame[ACS_LABEL].to_numpy(),
            "score": proba,
            "predicted": (proba >= 0.5).astype(np.int64),
        }
    )
    for column in slices:
        scored[column] = frame[column].to_numpy()
    report = performance(
        scored,
        metrics=list(_METRICS),
        slices=list(slices) or None,
        label="label",
        prediction="predicted",
        scores="score",
        classes=[0, 1],
    )
    results = report.results[["slice", "slice_value", "metric", "value", "labelled"]].copy()
    results["metric"] = results["metric"].map(_METRICS)
    return results


def _overall(scores: pd.DataFrame) -> dict[str, float]:
    rows = scores[scores["slice"] == "all"]
    return {str(m): float(v) for m, v in zip(rows["metric"], rows["value"], strict=True)}


@contextlib.contextmanager
def _share_of_cores() -> Iterator[None]:
    """The candidates train and are scored side by side, so each gets its share of the cores:
    OpenMP threads that outnumber the cores spin and stall one another (on 2 busy cores,
    gradient boosting with 2 threads next to another fit ran 10 times slower than with 1)."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    with threadpool_limits(limits=max(1, (os.cpu_count() or 1) // len(CANDIDATES))):
        yield


def _active() -> Any:
    """The step's run, or None when a step is called as a plain function."""
    return lw.active_run()


# -- the steps ---------------------------------------------------------------------------------


@step
def load(year: int, split: str, quick: bool = False, seed: int = SEED) -> DatasetVersion:
    """One survey year of the bundled ACS data, versioned as ``acs-ma-<year>``."""
    frame = sample_years(load_acs([year]), quick, seed).reset_index(drop=True)
    sampled = f", a sample of {len(frame):,} people" if quick else ""
    return lw.log_dataset(
        frame, name=f"acs-ma-{year}", split=split, description=f"ACS MA {year}{sampled}"
    )


@step(outputs=("data", "holdout"))
def validate(
    data: DatasetVersion, holdout: DatasetVersion
) -> tuple[DatasetVersion, DatasetVersion]:
    """Check the holdout year against a suite inferred from the training year: the candidates
    are compared on it, which means nothing if it does not look like what they learnt from.
    Both datasets pass through unchanged; the suite is kept with the step's run."""
    columns = [*ACS_FEATURES, ACS_LABEL]
    suite = training_suite(load_dataset(data)[columns])
    report = suite.validate(load_dataset(holdout)[columns])
    run = _active()
    if run is not None:
        run.log_metrics(
            {
                "suite_expectations": len(suite.expectations),
                "holdout_findings": len(report.findings),
            }
        )
        with tempfile.TemporaryDirectory(prefix="loopwise-suite-") as tmp:
            path = Path(tmp) / "suite.yaml"
            path.write_text(suite.to_yaml())
            run.log_artifact(path)
    if not report.ok:
        raise ValidationFailedError(
            f"Dataset {holdout.ref} broke the validation suite inferred from {data.ref} in "
            f"{len(report.errors)} way(s):\n{report.summary()}\nThe candidates are compared on "
            f"{holdout.ref}, so it must look like the training data. Fix the data (or the "
            "load step that produced it) and run the pipeline again.",
            parameter="holdout",
            dataset=holdout.ref,
            findings=[f.to_dict() for f in report.findings],
        )
    return data, holdout


@step(outputs=("train", "valid"))
def split(
    data: DatasetVersion, seed: int = SEED, valid_fraction: float = 0.2
) -> tuple[pd.DataFrame, DatasetVersion]:
    """Hold ``valid_fraction`` of the rows out of training, versioned as ``<data>-valid``."""
    if isinstance(valid_fraction, bool) or not 0 < valid_fraction < 1:
        raise InvalidArgumentError(
            f"valid_fraction: expected a number between 0 and 1 (exclusive), got "
            f"{valid_fraction!r}. 0.2 holds a fifth of the rows out.",
            parameter="valid_fraction",
        )
    frame = load_dataset(data)
    is_valid = np.random.default_rng(seed).random(len(frame)) < valid_fraction
    valid = lw.log_dataset(
        frame[is_valid].reset_index(drop=True),
        name=f"{data.name}-valid",
        split="validation",
        description=f"{data.description or data.name}, the rows held out of training",
    )
    return frame[~is_valid].reset_index(drop=True), valid


@step
def train(data: pd.DataFrame, kind: str, quick: bool = False, seed: int = SEED) -> Model:
    """Fit one candidate (``kind``: one of ``CANDIDATES``); logs its params and fit time."""
    model, params = candidate(kind, quick, seed)
    started = time.perf_counter()
    with _share_of_cores():
        model.fit(data[ACS_FEATURES], data[ACS_LABEL])
    fit_s = time.perf_counter() - started
    run = _active()
    if run is not None:
        run.log_params({**params, "train_rows": len(data)})
        for iteration, loss in enumerate(getattr(model, "train_score_", [])):
            run.log_metric("train_neg_log_loss", float(loss), step=iteration)
        run.log_metric("fit_s", fit_s)
    fitted: Model = model
    return fitted


@step
def evaluate(model: Model, valid: pd.DataFrame, holdout: pd.DataFrame) -> dict[str, float]:
    """Validation and holdout-year metrics, and validation accuracy by ``SLICES``.

    Returns ``valid_<metric>``, ``<year>_<metric>`` and ``slice/<column>:<value>/accuracy``;
    the step's run also gets each slice's AUC and row count (``.../auc``, ``.../rows``).
    """
    year = int(holdout["year"].iloc[0]) if "year" in holdout and len(holdout) else "holdout"
    with _share_of_cores():
        by_slice, later = score(model, valid, SLICES), score(model, holdout)
    metrics = {f"valid_{m}": v for m, v in _overall(by_slice).items()}
    metrics |= {f"{year}_{m}": v for m, v in _overall(later).items()}
    logged = dict(metrics)
    for row in by_slice.to_dict("records"):
        if row["slice"] == "all":
            continue
        name, value = str(row["slice"]), str(row["slice_value"])
        if row["metric"] == "accuracy":
            logged[slice_metric(name, value, "rows")] = float(row["labelled"])
        if row["metric"] not in ("accuracy", "auc") or math.isnan(row["value"]):
            continue  # too few rows for a number (performance() leaves it out, saying why)
        logged[slice_metric(name, value, str(row["metric"]))] = float(row["value"])
        if row["metric"] == "accuracy":
            metrics[slice_metric(name, value, "accuracy")] = float(row["value"])
    run = _active()
    if run is not None:
        run.log_metrics({k: float(v) for k, v in logged.items()})
    return metrics


@step
def register(
    models: dict[str, Model],
    scores: dict[str, dict[str, float]],
    data: DatasetVersion,
    valid: pd.DataFrame,
) -> ModelVersion:
    """Register the candidate with the best validation AUC as the next version of
    ``MODEL_NAME``; its run (and so the version) records ``data`` and ``valid`` as lineage."""
    if not scores or set(scores) != set(models):
        raise InvalidArgumentError(
            f"Expected one score per candidate model, got models {sorted(models)} and scores "
            f"{sorted(scores)}. Pass the same candidate names to both.",
            parameter="scores",
        )
    best = max(sorted(scores), key=lambda name: scores[name]["valid_auc"])
    with contextlib.ExitStack() as stack:
        run = _active() or stack.enter_context(lw.start_run(name=f"register-{best}"))
        run.log_metrics(scores[best])
        run.set_tags({"candidate": best})
        version: ModelVersion = run.log_model(
            models[best],
            name=MODEL_NAME,
            input_example=valid[ACS_FEATURES].head(5),
            description=f"{best}, best validation AUC among {len(scores)} candidates, "
            f"trained on {data.ref}",
        )
    return version


@pipeline
def employment_training(quick: bool = False, seed: int = SEED, valid_fraction: float = 0.2) -> None:
    """Train the employment model on 2015, compare candidates on a validation split and on
    2016, register the best. ``quick``: 5,000 people per year."""
    data = load(year=2015, split="train", quick=quick, seed=seed)
    holdout = load.named("load-holdout")(year=2016, split="holdout", quick=quick, seed=seed)
    data, holdout = validate(data, holdout)
    fit, valid = split(data, seed=seed, valid_fraction=valid_fraction)
    models: dict[str, Any] = {}
    scores: dict[str, Any] = {}
    for kind in CANDIDATES:
        models[kind] = train.named(f"train-{kind}")(fit, kind=kind, quick=quick, seed=seed)
        scores[kind] = evaluate.named(f"evaluate-{kind}")(models[kind], valid, holdout)
    register(models, scores, data, valid)
