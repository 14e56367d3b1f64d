"""Realised-performance benchmark: seconds to compute every metric, with confidence intervals,
for 1,000,000 predictions x 10 daily windows x 20 slice values.

Loopwise's ``performance`` (eight binary-classification metrics, each with its interval, or
four regression metrics) runs against, as a peer, a loop over the same 210 cells calling
scikit-learn's metric functions, which give point estimates only (no intervals). Best of
``--repeat`` runs; table to stdout, JSON to ``benchmarks/results/monitoring_performance.json``.

    .venv/bin/python benchmarks/monitoring_performance.py
    .venv/bin/python benchmarks/monitoring_performance.py --rows 200000 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from loopwise.monitoring import performance

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "monitoring_performance.json"
DAY_MS = 86_400_000


def classification_frame(rows: int, windows: int, slices: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, rows)
    p1 = np.clip(0.3 * y + 0.7 * rng.random(rows), 0, 1)
    return pd.DataFrame(
        {
            "timestamp_ms": np.sort(rng.integers(0, windows * DAY_MS, rows)),
            "segment": rng.integers(0, slices, rows),
            "output.predict": (p1 > 0.5).astype(int),
            "output.predict_proba": list(np.c_[1 - p1, p1]),
            "outcome": y,
        }
    )


def regression_frame(rows: int, windows: int, slices: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.gamma(4.0, 2.0, rows) + 1
    return pd.DataFrame(
        {
            "timestamp_ms": np.sort(rng.integers(0, windows * DAY_MS, rows)),
            "segment": rng.integers(0, slices, rows),
            "output.predict": y + rng.normal(0, 1.5, rows),
            "outcome": y,
        }
    )


def sklearn_loop(frame: pd.DataFrame, task: str) -> int:
    """The peer: every cell's metrics by scikit-learn, point estimates only."""
    from sklearn import metrics as skm

    day = frame["timestamp_ms"].to_numpy() // DAY_MS
    cells = [(w, None) for w in np.unique(day)]
    cells += [(w, s) for w in np.unique(day) for s in np.unique(frame["segment"])]
    y_all, pred_all = frame["outcome"].to_numpy(), frame["output.predict"].to_numpy()
    proba_all = np.vstack(frame["output.predict_proba"]) if task == "classification" else None
    segment = frame["segment"].to_numpy()
    for w, s in cells:
        rows = (day == w) if s is None else (day == w) & (segment == s)
        y, pred = y_all[rows], pred_all[rows]
        if task == "classification":
            assert proba_all is not None
            proba = proba_all[rows]
            for fn in (skm.accuracy_score, skm.balanced_accuracy_score, skm.precision_score,
                       skm.recall_score, skm.f1_score):  # fmt: skip
                fn(y, pred)
            skm.roc_auc_score(y, proba[:, 1])
            skm.log_loss(y, proba)
            skm.brier_score_loss(y, proba[:, 1])
        else:
            skm.root_mean_squared_error(y, pred)
            skm.mean_absolute_error(y, pred)
            skm.mean_absolute_percentage_error(y, pred)
            skm.r2_score(y, pred)
    return len(cells)


def best_of(repeat: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--windows", type=int, default=10)
    parser.add_argument("--slices", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    results = []
    for task, build in (("classification", classification_frame), ("regression", regression_frame)):
        frame = build(args.rows, args.windows, args.slices)
        report = performance(frame, window="1D", slices=["segment"])
        cells = report.to_frame()[["window", "slice", "slice_value"]].drop_duplicates()
        loopwise_s = best_of(
            args.repeat, lambda f=frame: performance(f, window="1D", slices=["segment"])
        )
        peer_s = best_of(1, lambda f=frame, t=task: sklearn_loop(f, t))
        results.append(
            {
                "task": task,
                "rows": args.rows,
                "cells": len(cells),
                "metrics": len(report.metrics),
                "loopwise_s": round(loopwise_s, 3),
                "sklearn_loop_s": round(peer_s, 3),
            }
        )
    table = Table(title=f"performance(): {args.rows:,} rows x {args.windows} windows x "
                  f"{args.slices} slice values")  # fmt: skip
    for column in ("task", "cells", "metrics", "loopwise (with intervals) s", "sklearn loop s"):
        table.add_column(column)
    for r in results:
        table.add_row(r["task"], str(r["cells"]), str(r["metrics"]), f"{r['loopwise_s']:.2f}",
                      f"{r['sklearn_loop_s']:.2f}")  # fmt: skip
    Console().print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps({"machine": platform.platform(), "results": results}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
