"""The Loopwise half of the tracking benchmark: one case, timed in a fresh process.

Run by ``benchmarks/tracking.py``; prints one JSON object on its last line of output. Its twin
``tracking_mlflow_worker.py`` does the same cases with MLflow, in MLflow's own environment.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import loopwise as lw
from loopwise.context import current

PROJECT = "bench"
BATCH_WIDTH = 50
SEARCH_FILTER = "metrics.auc > 0.5"


def _flush() -> float:
    """Seconds to make every spooled value durable in the database."""
    start = time.perf_counter()
    current().store.flush()
    return time.perf_counter() - start


def single(store: str, count: int) -> dict[str, Any]:
    lw.init(project=PROJECT, uri=store)
    run = lw.start_run(name="single", capture_env=False)
    start = time.perf_counter()
    for step in range(count):
        run.log_metric("loss", 1.0 / (step + 1), step=step)
    calls_s = time.perf_counter() - start
    flush_s = _flush()
    stored = len(lw.metric_history(run.id, "loss"))
    lw.shutdown()
    return {"seconds": calls_s + flush_s, "calls_s": calls_s, "flush_s": flush_s, "stored": stored}


def batch(store: str, batches: int) -> dict[str, Any]:
    lw.init(project=PROJECT, uri=store)
    run = lw.start_run(name="batch", capture_env=False)
    dicts = [{f"m{j}": (step + j) / 1000.0 for j in range(BATCH_WIDTH)} for step in range(batches)]
    start = time.perf_counter()
    for step, values in enumerate(dicts):
        run.log_metrics(values, step=step)
    calls_s = time.perf_counter() - start
    flush_s = _flush()
    stored = sum(len(lw.metric_history(run.id, f"m{j}")) for j in range(BATCH_WIDTH))
    lw.shutdown()
    return {"seconds": calls_s + flush_s, "calls_s": calls_s, "flush_s": flush_s, "stored": stored}


def create(store: str, count: int) -> dict[str, Any]:
    """Setup for the search case: ``count`` runs, half of them with auc above 0.5."""
    lw.init(project=PROJECT, uri=store)
    start = time.perf_counter()
    for i in range(count):
        run = lw.start_run(name=f"run-{i}", capture_env=False)
        run.log_param("index", i)
        run.log_metric("auc", 0.75 if i % 2 else 0.25)
        run.end()
    seconds = time.perf_counter() - start
    lw.shutdown()
    return {"seconds": seconds, "runs": count}


def search(store: str, repeats: int) -> dict[str, Any]:
    """The first search in a fresh process (what a script or CLI call pays), then warm repeats."""
    lw.init(project=PROJECT, uri=store)
    times, found = [], 0
    for _ in range(1 + repeats):
        start = time.perf_counter()
        found = len(lw.search_runs(SEARCH_FILTER, max_results=10_000))
        times.append(time.perf_counter() - start)
    lw.shutdown()
    return {"first_s": times[0], "warm_s": times[1:], "found": found}


CASES = {"single": single, "batch": batch, "create": create, "search": search}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--store", required=True, help="folder of the Loopwise store")
    parser.add_argument("--n", type=int, required=True, help="calls, batches, runs or repeats")
    args = parser.parse_args()
    result = CASES[args.case](args.store, args.n)
    result["version"] = lw.__version__
    print(json.dumps(result))


if __name__ == "__main__":
    main()
