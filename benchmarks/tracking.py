"""Tracking benchmark: Loopwise against MLflow 3 (SQLite backend), in the same run, same machine.

Times single ``log_metric`` calls until durable, batched ``log_metrics``, and a metric-filtered
run search over many runs. Every timed repetition runs in a fresh subprocess on a fresh store;
MLflow runs in its own virtual environment (``.bench/mlflow-venv``, created when missing) so
its dependencies never touch Loopwise's. Prints a table of medians and writes
``benchmarks/results/tracking.json``.

    .venv/bin/python benchmarks/tracking.py            # full run (about 12 minutes on 2 cores)
    .venv/bin/python benchmarks/tracking.py --quick    # smoke run (about a minute)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOOPWISE_WORKER = HERE / "tracking_loopwise_worker.py"
MLFLOW_WORKER = HERE / "tracking_mlflow_worker.py"
DEFAULT_MLFLOW_VENV = ROOT / ".bench" / "mlflow-venv"
DEFAULT_OUTPUT = HERE / "results" / "tracking.json"
MLFLOW_REQUIREMENT = "mlflow>=3,<4"
BATCH_WIDTH = 50  # values per log_metrics call, as in the workers

# Wide enough for the table when the output goes to a file or a pipe.
console = Console(width=None if sys.stdout.isatty() else 140)


@dataclass(frozen=True)
class Config:
    single_calls: int
    batches: int
    search_runs: int
    mlflow_search_runs: int | None  # None: as many as Loopwise unless that overruns the budget
    mlflow_fallback_runs: int
    mlflow_create_budget_s: float
    reps_loopwise: int
    reps_mlflow: int
    warm_searches: int


def make_config(args: argparse.Namespace) -> Config:
    quick = args.quick
    return Config(
        single_calls=1_000 if quick else 10_000,
        batches=20 if quick else 200,
        search_runs=args.search_runs or (1_000 if quick else 10_000),
        mlflow_search_runs=args.mlflow_search_runs or (1_000 if quick else None),
        mlflow_fallback_runs=2_000,
        mlflow_create_budget_s=args.mlflow_budget_s,
        reps_loopwise=args.reps_loopwise or (2 if quick else 5),
        reps_mlflow=args.reps_mlflow or (1 if quick else 3),
        warm_searches=2 if quick else 3,
    )


# -- environments and workers -------------------------------------------------------------------
def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def mlflow_version(python: Path) -> str | None:
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import mlflow; print(mlflow.__version__)"],
        capture_output=True,
        text=True,
        env=worker_env(),
    )
    version = probe.stdout.strip()
    return version if probe.returncode == 0 and version.startswith("3.") else None


def ensure_mlflow(venv: Path) -> tuple[Path, str]:
    """The MLflow environment's interpreter and MLflow version, installing it when missing."""
    python = venv_python(venv)
    version = mlflow_version(python)
    if version is None:
        with console.status(f"Installing {MLFLOW_REQUIREMENT} into {venv} (a few minutes)…"):
            if not python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            pip = subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", MLFLOW_REQUIREMENT],
                capture_output=True,
                text=True,
            )
        if pip.returncode != 0:
            sys.exit(f"Could not install {MLFLOW_REQUIREMENT} into {venv}:\n{pip.stderr[-3000:]}")
        version = mlflow_version(python)
        if version is None:
            sys.exit(f"{venv} has no importable MLflow 3 after installing it; remove it and retry.")
    return python, version


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("LOOPWISE_URI", "LOOPWISE_PROJECT", "MLFLOW_TRACKING_URI", "PYTHONPATH"):
        env.pop(name, None)
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["DO_NOT_TRACK"] = "true"
    return env


def run_worker(python: Path, script: Path, case: str, store: Path, n: int, *extra: str) -> Any:
    """Run one case in a fresh process and return the JSON it printed."""
    command = [str(python), str(script), case, "--store", str(store), "--n", str(n), *extra]
    done = subprocess.run(command, capture_output=True, text=True, env=worker_env())
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        sys.exit(
            f"{script.name} {case} failed (exit {done.returncode}):\n"
            f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        )
    return json.loads(lines[-1])


# -- measurements -------------------------------------------------------------------------------
@dataclass
class Side:
    """One system's samples for every case, and what it reported about itself."""

    single_s: list[float]
    batch_s: list[float]
    create_s: float
    search_runs: int
    search_found: int
    search_first_s: list[float]
    search_warm_s: list[float]
    version: str
    details: list[dict[str, Any]]


def measure(
    name: str,
    cfg: Config,
    reps: int,
    worker: Callable[..., Any],
    scratch: Path,
    search_runs: int,
    create_extra: tuple[str, ...] = (),
) -> Side:
    details: list[dict[str, Any]] = []

    def timed(case: str, n: int, expect: int) -> list[float]:
        samples = []
        for rep in range(reps):
            with console.status(f"{name}: {case} ({rep + 1}/{reps})…"):
                result = worker(case, scratch / f"{name}-{case}-{rep}", n)
            if result["stored"] != expect:
                sys.exit(f"{name} {case}: stored {result['stored']} values, expected {expect}.")
            details.append({"case": case, **result})
            samples.append(result["seconds"])
        console.log(
            f"{name} {case}: median {statistics.median(samples):.3f} s "
            f"({', '.join(f'{s:.3f}' for s in samples)})"
        )
        return samples

    single = timed("single", cfg.single_calls, cfg.single_calls)
    batch = timed("batch", cfg.batches, cfg.batches * BATCH_WIDTH)

    store = scratch / f"{name}-search"
    with console.status(f"{name}: creating {search_runs:,} runs for the search (setup)…"):
        created = worker("create", store, search_runs, *create_extra)
    details.append({"case": "create", **created})
    console.log(
        f"{name} setup: created {created['runs']:,} runs in {created['seconds']:.1f} s "
        f"({1000 * created['seconds'] / created['runs']:.1f} ms per run; not a target)"
    )
    first, warm, found = [], [], 0
    for rep in range(reps):
        with console.status(f"{name}: search in a fresh process ({rep + 1}/{reps})…"):
            result = worker("search", store, cfg.warm_searches)
        details.append({"case": "search", **result})
        first.append(result["first_s"])
        warm.extend(result["warm_s"])
        found = result["found"]
    console.log(
        f"{name} search: {found:,} of {created['runs']:,} runs, first call median "
        f"{1000 * statistics.median(first):.0f} ms, warm median {1000 * statistics.median(warm):.0f} ms"
    )
    return Side(
        single_s=single,
        batch_s=batch,
        create_s=created["seconds"],
        search_runs=created["runs"],
        search_found=found,
        search_first_s=first,
        search_warm_s=warm,
        version=str(details[-1].get("version", "")),
        details=details,
    )


# -- report -------------------------------------------------------------------------------------
@dataclass
class Row:
    measurement: str
    loopwise: str
    mlflow: str
    ratio: float
    target: str
    passed: bool | None
    loopwise_value: float
    mlflow_value: float
    unit: str


def build_rows(cfg: Config, lw: Side, ml: Side) -> list[Row]:
    med = statistics.median
    single_lw, single_ml = cfg.single_calls / med(lw.single_s), cfg.single_calls / med(ml.single_s)
    values = cfg.batches * BATCH_WIDTH
    batch_lw, batch_ml = values / med(lw.batch_s), values / med(ml.batch_s)
    rows = [
        Row(
            f"log_metric x{cfg.single_calls:,}, single, until durable ¹",
            f"{single_lw:,.0f} calls/s ({med(lw.single_s):.2f} s)",
            f"{single_ml:,.0f} calls/s ({med(ml.single_s):.2f} s)",
            single_lw / single_ml,
            "≥ 50x",
            single_lw / single_ml >= 50,
            single_lw,
            single_ml,
            "calls/s",
        ),
        Row(
            f"{values:,} values: log_metrics x{cfg.batches} of {BATCH_WIDTH} ²",
            f"{batch_lw:,.0f} values/s ({med(lw.batch_s):.2f} s)",
            f"{batch_ml:,.0f} values/s ({med(ml.batch_s):.2f} s)",
            batch_lw / batch_ml,
            "≥ 10x",
            batch_lw / batch_ml >= 10,
            batch_lw,
            batch_ml,
            "values/s",
        ),
    ]
    # Search cost grows with the runs searched: compare time per run when the counts differ.
    scale = lw.search_runs / ml.search_runs
    ml_note = "" if scale == 1 else f" on {ml.search_runs:,} runs"
    for label, lw_s, ml_s in (
        ("first call", med(lw.search_first_s), med(ml.search_first_s)),
        ("warm", med(lw.search_warm_s), med(ml.search_warm_s)),
    ):
        rows.append(
            Row(
                f"search {lw.search_runs:,} runs → {lw.search_found:,}: {label} ³",
                f"{1000 * lw_s:,.0f} ms",
                f"{1000 * ml_s:,.0f} ms{ml_note}",
                ml_s * scale / lw_s,
                "< 200 ms",
                lw_s < 0.2,
                1000 * lw_s,
                1000 * ml_s,
                "ms",
            )
        )
    lw_ms, ml_ms = 1000 * lw.create_s / lw.search_runs, 1000 * ml.create_s / ml.search_runs
    rows.append(
        Row(
            "create a run (setup for ³) ⁴",
            f"{lw_ms:.1f} ms/run ({lw.create_s:.0f} s)",
            f"{ml_ms:.1f} ms/run ({ml.create_s:.0f} s)",
            ml_ms / lw_ms,
            "—",
            None,
            lw_ms,
            ml_ms,
            "ms/run",
        )
    )
    return rows


def render(rows: list[Row], cfg: Config, lw: Side, ml: Side, quick: bool) -> Table:
    title = f"Tracking: Loopwise {lw.version} vs MLflow {ml.version} (SQLite), medians"
    if quick:
        title += " — QUICK SMOKE RUN, smaller counts"
    table = Table(title=title)
    for name, justify in (
        ("measurement", "left"),
        ("Loopwise", "right"),
        ("MLflow", "right"),
        ("ratio", "right"),
        ("target", "center"),
        ("result", "center"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for row in rows:
        verdict = "—" if row.passed is None else "[green]pass[/]" if row.passed else "[red]FAIL[/]"
        table.add_row(
            row.measurement, row.loopwise, row.mlflow, f"{row.ratio:,.1f}x", row.target, verdict
        )
    return table


def notes(cfg: Config, lw: Side, ml: Side) -> list[str]:
    per_run = "" if lw.search_runs == ml.search_runs else ", per run searched for the search rows"
    return [
        f"Medians of {cfg.reps_loopwise} (Loopwise) and {cfg.reps_mlflow} (MLflow) repetitions, "
        f"each in a fresh process on a fresh store. Ratio = Loopwise speed ÷ MLflow speed{per_run}.",
        "¹ Loopwise: run.log_metric(key, value, step) then lw's store flush() (values in the "
        "database); MLflow: mlflow.log_metric(key, value, step), synchronous.",
        f"² Loopwise: run.log_metrics(dict of {BATCH_WIDTH}, step) then flush(); MLflow: "
        f"mlflow.log_metrics(dict of {BATCH_WIDTH}, step) (one log_batch request each).",
        f'³ lw.search_runs("metrics.auc > 0.5", max_results=10000) → list of Run; '
        f"mlflow.search_runs(filter_string=..., max_results=10000) → pandas frame, on "
        f"{ml.search_runs:,} runs. First call: the first search in a fresh process; warm: "
        "repeats in that process.",
        "⁴ start a run, log 1 param and 1 metric, end it: setup for ³, no target.",
    ]


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark Loopwise tracking against MLflow 3 on SQLite, in the same run.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts, fewer repetitions")
    parser.add_argument("--reps-loopwise", type=int, help="repetitions for Loopwise (default 5)")
    parser.add_argument("--reps-mlflow", type=int, help="repetitions for MLflow (default 3)")
    parser.add_argument(
        "--search-runs", type=int, help="runs created for the search case (default 10,000)"
    )
    parser.add_argument(
        "--mlflow-search-runs",
        type=int,
        help="runs created for MLflow's search (default: as many as Loopwise, or 2,000 if "
        "creating them would take longer than --mlflow-budget-s)",
    )
    parser.add_argument(
        "--mlflow-budget-s",
        type=float,
        default=300.0,
        help="time allowed for creating MLflow's runs before falling back to 2,000 (default 300)",
    )
    parser.add_argument(
        "--mlflow-venv",
        type=Path,
        default=DEFAULT_MLFLOW_VENV,
        help="virtual environment for MLflow, created when missing (default .bench/mlflow-venv)",
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="where the JSON results go"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = make_config(args)
    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    mlflow_python, _ = ensure_mlflow(args.mlflow_venv.resolve())

    def loopwise_worker(case: str, store: Path, n: int, *extra: str) -> Any:
        return run_worker(Path(sys.executable), LOOPWISE_WORKER, case, store, n, *extra)

    def mlflow_worker(case: str, store: Path, n: int, *extra: str) -> Any:
        return run_worker(mlflow_python, MLFLOW_WORKER, case, store, n, *extra)

    with tempfile.TemporaryDirectory(prefix="loopwise-bench-") as tmp:
        scratch = Path(tmp)
        lw = measure("Loopwise", cfg, cfg.reps_loopwise, loopwise_worker, scratch, cfg.search_runs)
        ml_runs = cfg.mlflow_search_runs or cfg.search_runs
        budget: tuple[str, ...] = ()
        if cfg.mlflow_search_runs is None:
            budget = (
                "--budget-s",
                str(cfg.mlflow_create_budget_s),
                "--fallback",
                str(cfg.mlflow_fallback_runs),
            )
        ml = measure("MLflow", cfg, cfg.reps_mlflow, mlflow_worker, scratch, ml_runs, budget)

    rows = build_rows(cfg, lw, ml)
    wall_s = time.perf_counter() - started
    load_end = os.getloadavg()[0]
    console.print(render(rows, cfg, lw, ml, args.quick))
    for line in notes(cfg, lw, ml):
        console.print(line, highlight=False)
    console.print(f"Total wall time: {wall_s:.0f} s")
    if load_start > 0.5 or load_end > 1.5:
        # The benchmark itself keeps about one core busy; more means others shared the machine.
        console.print(
            f"[yellow]Load average (1 min) was {load_start:.2f} at the start and {load_end:.2f} at "
            "the end: other processes shared the machine, so timings are noisier.[/]"
        )

    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "tracking",
        "quick": args.quick,
        "wall_s": wall_s,
        "machine": {**machine(), "load_avg_1min": [load_start, load_end]},
        "config": asdict(cfg),
        "rows": [asdict(row) for row in rows],
        "loopwise": asdict(lw),
        "mlflow": asdict(ml),
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"Results written to {args.output}")
    return 0 if all(row.passed is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
