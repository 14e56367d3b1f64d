"""Run Evidently's ``DataDriftPreset`` on two Parquet files; print one JSON line.

Runs inside Evidently's own environment (see ``evidently_harness.py``), never Loopwise's:
``python evidently_worker.py REFERENCE.parquet CURRENT.parquet``.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable

import pandas as pd
from evidently import Report  # type: ignore[import-not-found]
from evidently.presets import DataDriftPreset  # type: ignore[import-not-found]

# Evidently's method display names, with its verdict rules (evidently/legacy/calculations/
# stattests/*.py): p-values drift below the threshold (K-S: at or below), distances at or above.
TESTS: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    "K-S p_value": ("ks", lambda s, t: s <= t),
    "chi-square p_value": ("chisquare", lambda s, t: s < t),
    "Z-test p_value": ("z", lambda s, t: s < t),
    "Wasserstein distance (normed)": ("wasserstein", lambda s, t: s >= t),
    "Jensen-Shannon distance": ("jensenshannon", lambda s, t: s >= t),
    "PSI": ("psi", lambda s, t: s >= t),
}


def main(reference_path: str, current_path: str) -> None:
    start = time.perf_counter()
    reference = pd.read_parquet(reference_path)
    current = pd.read_parquet(current_path)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current, reference)
    result = snapshot.dict()
    drift_s = time.perf_counter() - start
    columns, count = {}, None
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith("DriftedColumnsCount"):
            count = int(metric["value"]["count"])
        elif config["type"].endswith("ValueDrift"):
            test, rule = TESTS[config["method"]]
            score, threshold = float(metric["value"]), float(config["threshold"])
            columns[config["column"]] = {
                "test": test,
                "score": score,
                "threshold": threshold,
                "drifted": bool(rule(score, threshold)),
            }
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "columns": columns,
                "drifted_count": count,
                "load_s": load_s,
                "drift_s": drift_s,
                "peak_mb": peak_mb,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
