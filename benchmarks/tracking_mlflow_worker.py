"""The MLflow half of the tracking benchmark: one case, timed in a fresh process.

Runs in MLflow's own virtual environment (``.bench/mlflow-venv``), started by
``benchmarks/tracking.py``; imports nothing from Loopwise and prints one JSON object on its last
line of output. The cases mirror ``tracking_loopwise_worker.py`` call for call.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow  # after the telemetry switches above
from mlflow import MlflowClient

EXPERIMENT = "bench"
BATCH_WIDTH = 50
SEARCH_FILTER = "metrics.auc > 0.5"
PROBE_RUNS = 200  # runs created before deciding whether the full count fits the time budget


def _open(store: str) -> None:
    folder = Path(store)
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)  # MLflow puts its default artifact root (./mlruns) under the working folder
    mlflow.set_tracking_uri(f"sqlite:///{folder.resolve() / 'mlflow.db'}")
    mlflow.set_experiment(EXPERIMENT)


def single(store: str, count: int, **_: Any) -> dict[str, Any]:
    _open(store)
    run = mlflow.start_run(run_name="single")
    start = time.perf_counter()
    for step in range(count):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)  # synchronous: durable on return
    seconds = time.perf_counter() - start
    stored = len(MlflowClient().get_metric_history(run.info.run_id, "loss"))
    mlflow.end_run()
    return {"seconds": seconds, "stored": stored}


def batch(store: str, batches: int, **_: Any) -> dict[str, Any]:
    _open(store)
    run = mlflow.start_run(run_name="batch")
    dicts = [{f"m{j}": (step + j) / 1000.0 for j in range(BATCH_WIDTH)} for step in range(batches)]
    start = time.perf_counter()
    for step, values in enumerate(dicts):
        mlflow.log_metrics(values, step=step)
    seconds = time.perf_counter() - start
    client = MlflowClient()
    stored = sum(
        len(client.get_metric_history(run.info.run_id, f"m{j}")) for j in range(BATCH_WIDTH)
    )
    mlflow.end_run()
    return {"seconds": seconds, "stored": stored}


def create(store: str, count: int, budget_s: float = 0.0, fallback: int = 0) -> dict[str, Any]:
    """Setup for the search case; stops at ``fallback`` runs if ``count`` would overrun the budget."""
    _open(store)
    target = count
    start = time.perf_counter()
    i = 0
    while i < target:
        with mlflow.start_run(run_name=f"run-{i}"):
            mlflow.log_param("index", i)
            mlflow.log_metric("auc", 0.75 if i % 2 else 0.25)
        i += 1
        if i == PROBE_RUNS and budget_s and fallback:
            projected_s = (time.perf_counter() - start) / PROBE_RUNS * count
            if projected_s > budget_s:
                target = min(count, max(fallback, PROBE_RUNS))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "runs": target, "asked": count}


def search(store: str, repeats: int, **_: Any) -> dict[str, Any]:
    """The first search in a fresh process, then warm repeats (results as a pandas frame)."""
    _open(store)
    times, found = [], 0
    for _ in range(1 + repeats):
        start = time.perf_counter()
        found = len(mlflow.search_runs(filter_string=SEARCH_FILTER, max_results=10_000))
        times.append(time.perf_counter() - start)
    return {"first_s": times[0], "warm_s": times[1:], "found": found}


CASES = {"single": single, "batch": batch, "create": create, "search": search}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--store", required=True, help="folder for mlflow.db")
    parser.add_argument("--n", type=int, required=True, help="calls, batches, runs or repeats")
    parser.add_argument("--budget-s", type=float, default=0.0, help="create: time budget")
    parser.add_argument("--fallback", type=int, default=0, help="create: runs if over budget")
    args = parser.parse_args()
    extra = {"budget_s": args.budget_s, "fallback": args.fallback} if args.case == "create" else {}
    result = CASES[args.case](args.store, args.n, **extra)
    result["version"] = mlflow.__version__
    print(json.dumps(result))


if __name__ == "__main__":
    main()
