"""The main demo: version the 2015 ACS data, train candidates with tracking, promote the best,
then serve 2016-2018 (and a broken batch) and monitor what happens (``demo_monitoring.py``).

Run it with ``loopwise demo`` (or ``make demo``). It needs the ``sklearn`` extra.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

import loopwise as lw
from loopwise.errors import require_extra
from loopwise.examples import ACS_FEATURES, ACS_LABEL, load_acs
from loopwise.examples.demo_monitoring import run_monitoring

__all__ = ["Candidate", "run_demo"]

MODEL_NAME = "employment"
SEED = 2015


@dataclass
class Candidate:
    name: str
    run_id: str
    metrics: dict[str, float]
    fit_s: float
    model: Any


def _candidates(quick: bool) -> dict[str, tuple[Any, dict[str, Any]]]:
    require_extra("sklearn", "sklearn")
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = [c for c in ACS_FEATURES if c != "AGEP"]
    logistic = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [
                        ("onehot", OneHotEncoder(handle_unknown="ignore"), categorical),
                        ("scale", StandardScaler(), ["AGEP"]),
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=300 if quick else 1000, C=1.0)),
        ]
    )
    iterations = 50 if quick else 200
    boosting = HistGradientBoostingClassifier(
        max_iter=iterations,
        learning_rate=0.1,
        categorical_features="from_dtype",
        early_stopping=False,
        random_state=SEED,
    )
    return {
        "logistic-regression": (
            logistic,
            {"model": "LogisticRegression", "C": 1.0, "encoding": "one-hot"},
        ),
        "gradient-boosting": (
            boosting,
            {
                "model": "HistGradientBoostingClassifier",
                "max_iter": iterations,
                "learning_rate": 0.1,
            },
        ),
    }


def _scores(model: Any, X: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    proba = model.predict_proba(X)[:, 1]
    predicted = (proba >= 0.5).astype(int)
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "auc": float(roc_auc_score(y, proba)),
        "f1": float(f1_score(y, predicted)),
        "log_loss": float(log_loss(y, proba)),
    }


def run_demo(
    uri: str | None = None,
    project: str = "employment",
    quick: bool = False,
    console: Console | None = None,
) -> dict[str, Any]:
    """Train, track, register and promote; returns a summary for tests and scripts."""
    console = console or Console()
    started = time.perf_counter()
    lw.init(project=project, uri=uri)
    data = load_acs()
    if quick:
        data = data.groupby("year", group_keys=False).sample(n=5000, random_state=SEED)
    train_all = data[data["year"] == 2015].reset_index(drop=True)
    later = data[data["year"] == 2016].reset_index(drop=True)

    with console.status("Versioning the 2015 data…"):
        train_version = lw.log_dataset(
            train_all, name="acs-ma-2015", split="train", description="ACS MA 2015"
        )
        later_version = lw.log_dataset(
            later, name="acs-ma-2016", split="holdout", description="ACS MA 2016"
        )
    console.print(
        f"Dataset [bold]{train_version.ref}[/]: {train_version.num_rows:,} rows, "
        f"{len(train_version.schema)} columns, {train_version.content_hash[:19]}…"
    )

    rng = np.random.default_rng(SEED)
    is_valid = rng.random(len(train_all)) < 0.2
    X_train, y_train = train_all.loc[~is_valid, ACS_FEATURES], train_all.loc[~is_valid, ACS_LABEL]
    X_valid, y_valid = train_all.loc[is_valid, ACS_FEATURES], train_all.loc[is_valid, ACS_LABEL]
    X_later, y_later = later[ACS_FEATURES], later[ACS_LABEL]
    valid_version = lw.log_dataset(
        train_all[is_valid].reset_index(drop=True),
        name="acs-ma-2015-valid",
        split="validation",
        description="ACS MA 2015, the rows held out of training",
    )

    candidates: list[Candidate] = []
    for name, (model, params) in _candidates(quick).items():
        with (
            console.status(f"Training {name}…"),
            lw.start_run(name=name, tags={"demo": "employment"}) as run,
        ):
            run.log_params({**params, "seed": SEED, "train_rows": len(X_train)})
            run.use(train_version, role="train")
            run.use(later_version, role="evaluation")
            fit_started = time.perf_counter()
            model.fit(X_train, y_train)
            fit_s = time.perf_counter() - fit_started
            for step, loss in enumerate(getattr(model, "train_score_", [])):
                run.log_metric("train_neg_log_loss", float(loss), step=step)
            metrics = {f"valid_{k}": v for k, v in _scores(model, X_valid, y_valid).items()}
            metrics |= {f"2016_{k}": v for k, v in _scores(model, X_later, y_later).items()}
            metrics["fit_s"] = fit_s
            run.log_metrics(metrics)
            candidates.append(Candidate(name, run.id, metrics, fit_s, model))
        console.print(f"  {name}: validation AUC {metrics['valid_auc']:.4f} ({fit_s:.1f} s to fit)")

    best = max(candidates, key=lambda c: c.metrics["valid_auc"])
    with lw.start_run(name=f"register-{best.name}", tags={"demo": "employment"}) as register_run:
        register_run.use(train_version, role="train")
        register_run.use(valid_version, role="validation")
        register_run.log_metrics({k: v for k, v in best.metrics.items()})
        register_run.set_tags({"candidate_run": best.run_id})
        version = register_run.log_model(
            best.model,
            name=MODEL_NAME,
            input_example=X_valid.head(5),
            description=f"{best.name}, best validation AUC among {len(candidates)} candidates",
        )
    previous = lw.models.set_alias(MODEL_NAME, version.version, "production")

    loaded = lw.models.load(f"{MODEL_NAME}@production")
    check = load_acs([2018]) if not quick else data[data["year"] == 2018]
    accuracy_2018 = float(
        (loaded.predict(check[ACS_FEATURES]) == check[ACS_LABEL].to_numpy()).mean()
    )

    table = Table(title="Employment model candidates (ACS MA, trained on 2015; ★ = registered)")
    table.add_column("candidate", no_wrap=True)
    for column in ("valid AUC", "valid acc", "2016 AUC", "2016 acc", "fit s"):
        table.add_column(column, justify="right")
    table.add_column("run", no_wrap=True)
    for c in candidates:
        table.add_row(
            ("★ " if c is best else "  ") + c.name,
            f"{c.metrics['valid_auc']:.4f}",
            f"{c.metrics['valid_accuracy']:.4f}",
            f"{c.metrics['2016_auc']:.4f}",
            f"{c.metrics['2016_accuracy']:.4f}",
            f"{c.fit_s:.1f}",
            c.run_id[:8],
        )
    console.print(table)
    moved = f" (was version {previous})" if previous is not None else ""
    console.print(
        f"Registered [bold]{MODEL_NAME}/{version.version}[/] ({best.name}) and pointed "
        f"[bold]{MODEL_NAME}@production[/] at it{moved}."
    )
    console.print(
        f"Loaded {MODEL_NAME}@production back from the registry: accuracy on 2018 = {accuracy_2018:.4f} "
        f"({len(check):,} people)."
    )
    full_2015 = train_all if not quick else load_acs([2015])
    monitoring = run_monitoring(data, full_2015, quick, console, project)
    console.print(f"Done in {time.perf_counter() - started:.1f} s.")
    console.print(
        f"Next: [cyan]loopwise -p {project} runs list[/], [cyan]loopwise -p {project} models show "
        f"{MODEL_NAME}[/], [cyan]loopwise -p {project} monitor status {MODEL_NAME} --label "
        f"{ACS_LABEL}[/], [cyan]loopwise -p {project} monitor alerts[/]"
    )
    return {
        "best": best.name,
        "version": version.version,
        "candidates": {c.name: c.metrics for c in candidates},
        "accuracy_2018": accuracy_2018,
        "dataset": train_version.ref,
        "monitoring": monitoring,
    }
