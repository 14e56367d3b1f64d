"""The Loopwise half of the drift benchmark: one drift report, timed in a fresh process.

Run by ``benchmarks/drift.py``: ``python drift_loopwise_worker.py REFERENCE CURRENT``; prints one
JSON line in the shape of ``tests/evidently_worker.py``'s, which does the same with Evidently.
``drift`` is given the two paths and reads the Parquet files itself, one column at a time (how
it holds one column per thread in memory), so its seconds include reading the files; Evidently's
worker reads them with pandas first and its seconds do not. ``--frames`` gives Loopwise
DataFrames read with pandas too, like Evidently.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

import pandas as pd

from loopwise.data.drift import drift


def main(reference_path: str, current_path: str, frames: bool) -> None:
    start = time.perf_counter()
    reference: Any = pd.read_parquet(reference_path) if frames else reference_path
    current: Any = pd.read_parquet(current_path) if frames else current_path
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    report = drift(reference, current)
    drift_s = time.perf_counter() - start
    columns = {
        name: {
            "test": c.test,
            "score": c.score,
            "threshold": c.threshold,
            "drifted": c.drifted,
        }
        for name, c in report.columns.items()
    }
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "columns": columns,
                "drifted_count": len(report.drifted_columns),
                "load_s": load_s,
                "drift_s": drift_s,
                "peak_mb": peak_mb,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], frames="--frames" in sys.argv[3:])
