"""Drift report speed and memory: Loopwise's ``drift`` against Evidently 0.7's ``DataDriftPreset``.

Both run on the same two Parquet files, each system in a fresh process per repetition (Evidently
in its own environment, ``.bench/evidently-venv``, created when missing): 1,000,000 rows x 20
columns per side, ACS 2015 (reference) against ACS 2018 (current), resampled with replacement.
The ACS table has 17 usable columns (16 features and the label; ``id`` and ``year`` are dropped);
three continuous columns are added so that numeric tests get their share of the work:
``age_days`` (age plus a uniform day of the year), ``score`` (a logistic score of age and
schooling with noise), and ``noise`` (standard normal on both sides, which must not drift).

Evidently gets DataFrames read with pandas (load time reported apart); Loopwise gets the two paths
and reads them itself, column by column, inside the timed call. Prints a table of medians and
writes ``benchmarks/results/drift.json``.

    .venv/bin/python benchmarks/drift.py            # full run (about 5 minutes on 2 cores)
    .venv/bin/python benchmarks/drift.py --quick    # 100,000 rows, one repetition
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the Evidently environment helper lives with the tests

from tests.evidently_harness import ensure_evidently, run_evidently  # noqa: E402

ACS = ROOT / "src" / "loopwise" / "examples" / "acs_employment_ma.parquet"
DEFAULT_OUTPUT = HERE / "results" / "drift.json"
WORKER = HERE / "drift_loopwise_worker.py"
TARGET_SPEEDUP = 30.0
TARGET_MEMORY_SHARE = 1 / 3

console = Console(width=None if sys.stdout.isatty() else 140)


def build_frames(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ACS 2015 and 2018 resampled to ``rows`` rows each, with the three added columns."""
    acs = pd.read_parquet(ACS).drop(columns=["id"])
    rng = np.random.default_rng(seed)
    frames = []
    for year in (2015, 2018):
        people = acs[acs.year == year].drop(columns=["year"])
        frame = people.iloc[rng.integers(0, len(people), rows)].reset_index(drop=True)
        age = frame["AGEP"].to_numpy()
        schooling = frame["SCHL"].astype(int).to_numpy()
        frame["age_days"] = age * 365.25 + rng.uniform(0, 365.25, rows)
        logit = 0.03 * (age - 40) + 0.15 * (schooling - 16) + rng.normal(0, 1, rows)
        frame["score"] = 1 / (1 + np.exp(-logit))
        frame["noise"] = rng.normal(0, 1, rows)
        frames.append(frame)
    return frames[0], frames[1]


def run_loopwise(reference: Path, current: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("LOOPWISE_URI", "PYTHONPATH")}
    done = subprocess.run(
        [sys.executable, str(WORKER), str(reference), str(current)],
        capture_output=True,
        text=True,
        env=env,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        sys.exit(f"The Loopwise worker failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def summarize(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "system": name,
        "drift_s": statistics.median(r["drift_s"] for r in runs),
        "load_s": statistics.median(r["load_s"] for r in runs),
        "peak_mb": statistics.median(r["peak_mb"] for r in runs),
        "drifted": runs[-1]["drifted_count"],
        "columns": runs[-1]["columns"],
        "runs": [{k: v for k, v in r.items() if k != "columns"} for r in runs],
    }


def compare(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """Per-column agreement of verdicts and tests, and the largest difference in scores."""
    names = sorted(theirs["columns"])
    agree = [
        n
        for n in names
        if n in ours["columns"]
        and ours["columns"][n]["drifted"] == theirs["columns"][n]["drifted"]
        and ours["columns"][n]["test"] == theirs["columns"][n]["test"]
    ]
    diffs = {
        n: abs(ours["columns"][n]["score"] - theirs["columns"][n]["score"])
        for n in names
        if n in ours["columns"]
    }
    worst = max(diffs, key=lambda n: diffs[n])
    return {
        "columns": len(names),
        "agree": len(agree),
        "disagree": [n for n in names if n not in agree],
        "max_abs_score_diff": diffs[worst],
        "max_abs_score_diff_column": worst,
    }


def render(lw: dict[str, Any], ev: dict[str, Any], agreement: dict[str, Any], rows: int) -> Table:
    table = Table(title=f"Drift report, {rows:,} rows x {agreement['columns']} columns per side")
    for header in ("system", "drift s", "load s", "peak MB", "columns drifted", "verdicts agree"):
        table.add_column(header, justify="left" if header == "system" else "right")
    for side in (lw, ev):
        table.add_row(
            side["system"],
            f"{side['drift_s']:.2f}",
            f"{side['load_s']:.2f}",
            f"{side['peak_mb']:,.0f}",
            str(side["drifted"]),
            f"{agreement['agree']}/{agreement['columns']}",
        )
    speedup = ev["drift_s"] / lw["drift_s"]
    memory = lw["peak_mb"] / ev["peak_mb"]
    table.add_row(
        "ratio",
        f"{speedup:.0f}x faster",
        "",
        f"{memory:.2f}x of Evidently's",
        "",
        "",
        style="bold",
    )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help="rows per side (default 1,000,000)")
    parser.add_argument("--reps", type=int, help="repetitions per system (default 3)")
    parser.add_argument("--quick", action="store_true", help="100,000 rows, one repetition")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--build", nargs=3, metavar=("ROWS", "REFERENCE", "CURRENT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.build:
        reference, current = build_frames(int(args.build[0]))
        reference.to_parquet(args.build[1])
        current.to_parquet(args.build[2])
        return 0
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    reps = args.reps or (1 if args.quick else 3)
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    with console.status("Preparing Evidently's environment…"):
        python, version = ensure_evidently()
    with tempfile.TemporaryDirectory(prefix="loopwise-drift-bench-") as scratch:
        reference_path, current_path = (
            Path(scratch, "reference.parquet"),
            Path(scratch, "current.parquet"),
        )
        with console.status(f"Building {rows:,}-row frames…"):
            # In a child process: a worker's ru_maxrss starts from the resident size of the
            # process that spawned it (Linux carries it over exec), so this one stays small.
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--build",
                    str(rows),
                    str(reference_path),
                    str(current_path),
                ],
                check=True,
            )
        loopwise_runs, evidently_runs = [], []
        for rep in range(reps):  # interleaved, so that load changes hit both alike
            with console.status(f"Loopwise ({rep + 1}/{reps})…"):
                loopwise_runs.append(run_loopwise(reference_path, current_path))
            console.log(f"Loopwise run {rep + 1}: {loopwise_runs[-1]['drift_s']:.2f} s")
            with console.status(f"Evidently {version} ({rep + 1}/{reps})…"):
                evidently_runs.append(run_evidently(python, reference_path, current_path))
            console.log(f"Evidently run {rep + 1}: {evidently_runs[-1]['drift_s']:.2f} s")
    lw = summarize("loopwise", loopwise_runs)
    ev = summarize(f"evidently {version}", evidently_runs)
    agreement = compare(lw, ev)
    console.print(render(lw, ev, agreement, rows))
    speedup, memory = ev["drift_s"] / lw["drift_s"], lw["peak_mb"] / ev["peak_mb"]
    passed = (
        speedup >= TARGET_SPEEDUP
        and memory <= TARGET_MEMORY_SHARE
        and agreement["agree"] == agreement["columns"]
    )
    console.print(
        f"Targets: ≥{TARGET_SPEEDUP:.0f}x faster (got {speedup:.0f}x), ≤1/3 of the peak memory "
        f"(got {memory:.2f}), same verdicts (got {agreement['agree']}/{agreement['columns']}"
        f"{', differ: ' + ', '.join(agreement['disagree']) if agreement['disagree'] else ''}). "
        f"Largest score difference: {agreement['max_abs_score_diff']:.2e} "
        f"({agreement['max_abs_score_diff_column']}). Seconds are medians of the drift "
        "computation: Evidently's after pandas has read both files (load s), Loopwise's "
        "including reading them (it is given the two paths and reads one column per thread; "
        "load s is 0). Peak is the worker process's maximum resident memory.",
        highlight=False,
    )
    load_end = os.getloadavg()[0]
    if load_start > 0.5 or load_end > 1.5:
        console.print(
            f"[yellow]Load average (1 min) was {load_start:.2f} at the start and {load_end:.2f} "
            "at the end: other processes shared the machine, so timings are noisier.[/]"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "drift",
        "rows": rows,
        "reps": reps,
        "wall_s": time.perf_counter() - started,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1min": [load_start, load_end],
        },
        "loopwise": lw,
        "evidently": ev,
        "agreement": agreement,
        "speedup": speedup,
        "memory_share": memory,
        "passed": passed,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"Results written to {args.output}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
