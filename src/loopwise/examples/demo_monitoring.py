"""The demo's second act: the production model meets 2016-2018, and an upstream bug.

Each later survey year is served by ``employment@production`` and its predictions land in the
prediction log (one day of traffic per year), the true outcomes follow, and a last batch of
2018 arrives with ``AGEP`` in months, as a broken upstream job would send it, before any
outcome is known. The monitor then reads the log window by window: drift and skew of the
inputs, the training data's validation suite on them, realised and estimated accuracy, and
the alerts those raise. It writes the HTML report beside the store.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

import loopwise as lw
from loopwise.data import attach_suite, infer_suite
from loopwise.examples import ACS_FEATURES, ACS_LABEL
from loopwise.monitoring import AlertRules, log_outcomes, monitor, write_report
from loopwise.store.predictions import PredictionRecord, read_predictions, write_predictions

__all__ = ["BUG_DAY", "run_monitoring"]

DEPLOYMENT = "employment"
YEAR_DAYS = {2016: "2016-07-01", 2017: "2017-07-01", 2018: "2018-07-01"}
BUG_DAY = "2018-12-03"  # a later 2018 batch, sent with AGEP in months
DAY_MS = 86_400_000


def _day_ms(day: str) -> int:
    return int(pd.Timestamp(day, tz="UTC").value // 1_000_000)


def _serve(loaded: Any, rows: pd.DataFrame, day: str, prefix: str, project: str) -> list[str]:
    """Predict ``rows`` with the production model and log them as one day of traffic; rows
    this day's log already holds (a second run of the demo) are not logged again."""
    X = rows[ACS_FEATURES]
    proba = loaded.predict_proba(X)
    start = _day_ms(day)
    spacing_ms = DAY_MS // max(len(rows), 1)
    ids = [f"{prefix}-{i}" for i in range(len(rows))]
    inputs = [
        {str(k): v for k, v in row.items()}
        for row in X.astype({c: str for c in ACS_FEATURES if c != "AGEP"}).to_dict("records")
    ]
    records = [
        PredictionRecord(
            project=project,
            deployment=DEPLOYMENT,
            request_id=request_id,
            model=loaded.version.name,
            version=loaded.version.version,
            timestamp_ms=start + i * spacing_ms,
            latency_ms=3.0,
            inputs=row,
            outputs={"predict": int(p.argmax()), "predict_proba": p.tolist()},
        )
        for i, (request_id, row, p) in enumerate(zip(ids, inputs, proba, strict=True))
    ]
    store = lw.context.current().store
    logged = set(read_predictions(store, project, DEPLOYMENT, start, start + DAY_MS)["request_id"])
    new = [r for r in records if r.request_id not in logged]
    if new:
        write_predictions(store, new)
    return ids


def _report_path() -> Path:
    uri = lw.context.current().store.uri
    folder = Path(uri) if "://" not in uri and os.path.isdir(uri) else Path.cwd()
    return folder / "reports" / "monitor-employment.html"


def run_monitoring(
    data: pd.DataFrame, train_all: pd.DataFrame, quick: bool, console: Console, project: str
) -> dict[str, Any]:
    """Serve 2016-2018 and a broken batch, log outcomes, monitor; returns what was found."""
    rows_per_year = 3_000 if quick else 20_000
    loaded = lw.models.load(f"{DEPLOYMENT}@production")
    # The suite is inferred from the whole 2015 training data (rare categories included) and
    # attached to its dataset, so that the monitor checks served inputs against it too.
    attach_suite("acs-ma-2015", infer_suite(train_all[ACS_FEATURES]), on_failure="warn")
    rng = np.random.default_rng(2016)
    with console.status("Serving 2016, 2017 and 2018 through employment@production…"):
        for year, day in YEAR_DAYS.items():
            rows = data[data["year"] == year]
            rows = rows.iloc[rng.choice(len(rows), min(rows_per_year, len(rows)), replace=False)]
            ids = _serve(loaded, rows, day, f"y{year}", project)
            log_outcomes(DEPLOYMENT, ids, rows[ACS_LABEL].to_numpy())
        broken = data[data["year"] == 2018].sample(rows_per_year // 4, random_state=2018)
        broken = broken.assign(AGEP=broken["AGEP"] * 12)  # the upstream bug: months
        _serve(loaded, broken, BUG_DAY, "bug", project)
    with console.status("Monitoring the prediction log…"):
        report = monitor(
            DEPLOYMENT,
            window="1D",
            label=ACS_LABEL,
            slices=["SEX", "RAC1P"],
            rules=AlertRules(min_performance={"accuracy": 0.75}),
        )
        path = write_report(report, _report_path())
    return _summarise(report, path, console)


def _summarise(report: Any, path: Path, console: Console) -> dict[str, Any]:
    table = Table(title="employment@production, one day of traffic per period")
    for column in ("period", "rows", "labels", "drifted", "skewed", "invalid", "acc.",
                   "est. acc."):  # fmt: skip
        table.add_column(column, justify="left" if column == "period" else "right")
    performance = report.performance.query("slice == 'all' and metric == 'accuracy'")
    estimated = report.estimated.query("metric == 'accuracy'")
    periods: dict[str, dict[str, Any]] = {}
    for _, row in report.traffic.iterrows():
        start = row["window_start"]
        day = start.strftime("%Y-%m-%d")
        name = "2018, AGEP in months" if day == BUG_DAY else day[:4]
        drift = report.drift[(report.drift["window_start"] == start) & report.drift["drifted"]]
        skew = report.skew[(report.skew["window_start"] == start) & report.skew["skewed"]]
        errors = report.validation[
            (report.validation["window_start"] == start)
            & (report.validation["severity"] == "error")
        ]
        realised = performance[performance["window_start"] == start]["value"]
        guess = estimated[estimated["window_start"] == start]["value"]
        periods[name] = {
            "rows": int(row["rows"]),
            "drifted": drift["column"].tolist(),
            "skewed": skew["column"].tolist(),
            "invalid": sorted(set(errors["column"])),
            "accuracy": float(realised.iloc[0]) if len(realised) else float("nan"),
            "estimated_accuracy": float(guess.iloc[0]) if len(guess) else float("nan"),
        }
        found = periods[name]
        table.add_row(
            name,
            f"{found['rows']:,}",
            f"{int(row['labelled']):,}",
            ", ".join(found["drifted"]) or "-",
            ", ".join(found["skewed"]) or "-",
            ", ".join(found["invalid"]) or "-",
            "-" if np.isnan(found["accuracy"]) else f"{found['accuracy']:.3f}",
            "-" if np.isnan(found["estimated_accuracy"]) else f"{found['estimated_accuracy']:.3f}",
        )
    console.print(table)
    for alert in report.alerts:
        colour = {"critical": "red", "warning": "yellow"}.get(alert["severity"], "blue")
        console.print(f"  [{colour}]{alert['severity']}[/] {alert['rule']}: {alert['message']}")
    console.print(f"Monitoring report: [bold]{path}[/] (open it in a browser; it works offline).")
    return {
        "periods": periods,
        "alerts": [(a["rule"], a["severity"]) for a in report.alerts],
        "report": str(path),
    }
