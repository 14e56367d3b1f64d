"""Pipelines benchmark: scheduling and caching overhead, and parallel speed-up, against plain loops.

Two pipelines from ``benchmarks/pipelines_flows.py``. ``chain``: ten trivial steps (JSON values
and two tiny DataFrames), timed cold with the inline and local executors, re-run fully cached,
and against the same ten calls as a plain Python loop (the zero-overhead floor). ``branches``:
four CPU-bound pure-Python steps of a few seconds each joined by a last step, run sequentially
(``inline``), on the local executor with 2 and 4 workers and on a local Ray, against the plain
loop. Every measurement runs in a fresh process on a fresh store in a temporary folder;
executor start-up (spawning workers, ``ray.init``) is timed apart as well. Prints a table of
medians and writes ``benchmarks/results/pipelines.json``.

    .venv/bin/python benchmarks/pipelines.py            # full run (about 5 minutes on 2 cores)
    .venv/bin/python benchmarks/pipelines.py --quick    # 0.5 s branches, one repetition
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FLOWS = HERE / "pipelines_flows.py"
DEFAULT_OUTPUT = HERE / "results" / "pipelines.json"
PROJECT = "bench"
CHAIN_STEPS = 10
CACHED_TARGET_S = 1.0
# Iterations of `burn` timed once at start, to size a branch to --branch-s on this machine.
CALIBRATION_ITERATIONS = 2_000_000
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


# -- one measurement, in this (fresh) process ---------------------------------------------------
def _import_flows() -> tuple[Any, Any, float]:
    start = time.perf_counter()
    import loopwise as lw

    sys.path.insert(0, str(HERE))
    import pipelines_flows as flows

    return lw, flows, time.perf_counter() - start


def _local_startup_s(workers: int) -> float:
    """Seconds until ``workers`` fresh local-executor workers can run a step (imports included).

    The runner starts its own pool in every ``run()``, so this is also inside the run's time;
    it is measured here, on a throwaway pool of the same kind, to show how much of it is start-up.
    """
    from concurrent.futures import ProcessPoolExecutor

    import pipelines_flows as flows
    from loopwise.pipelines.executors import _WorkerContext

    start = time.time()
    with ProcessPoolExecutor(max_workers=workers, mp_context=_WorkerContext()) as pool:
        # Each call holds its worker a while, so that every call gets a worker of its own.
        ready = list(pool.map(flows.worker_ready, [1.5] * workers))
    return max(ready) - start


def _ray_init(workers: int | None) -> float:
    """Start a local Ray as ``RayExecutor`` would (same arguments); the executor then uses it."""
    start = time.perf_counter()
    import ray

    ray.init(
        num_cpus=workers,
        include_dashboard=False,
        log_to_driver=True,
        configure_logging=False,
    )
    return time.perf_counter() - start


def run_case(args: argparse.Namespace) -> dict[str, Any]:
    lw, flows, import_s = _import_flows()
    out: dict[str, Any] = {"import_s": import_s}
    if args.case in ("chain-plain", "branches-plain"):
        start = time.perf_counter()
        if args.case == "chain-plain":
            flows.chain_plain()
        else:
            flows.branches_plain(args.iterations)
        out["run_s"] = time.perf_counter() - start
        return out
    lw.init(project=PROJECT, uri=str(args.store))
    executor, workers = args.executor, args.workers
    if executor == "local":
        out["startup_s"] = _local_startup_s(workers or os.cpu_count() or 1)
    elif executor == "ray":
        out["startup_s"] = _ray_init(workers)
    pipeline = flows.chain if args.case.startswith("chain") else flows.branches
    params = {"iterations": args.iterations} if pipeline is flows.branches else {}

    def timed_run(**options: Any) -> tuple[float, Any]:
        start = time.perf_counter()
        result = pipeline.run(params, executor=executor, workers=workers, **options)
        return time.perf_counter() - start, result

    out["run_s"], result = timed_run()
    out["executed"], out["cached"] = len(result.executed), len(result.cached)
    if args.case != "chain-cached" and result.cached:
        raise SystemExit(f"Expected a fresh store to cache nothing, got {result.cached} cached.")
    if args.case == "chain-cold" and executor == "inline":
        # The same process again: no first-call costs (store creation, lazy imports).
        out["warm_uncached_s"], _ = timed_run(cache=False)
        out["warm_cached_s"], warm = timed_run()
        if len(warm.cached) != CHAIN_STEPS:
            raise SystemExit(f"Expected {CHAIN_STEPS} cached steps, got {warm.cached}.")
    if executor == "ray":
        import ray

        ray.shutdown()
    lw.shutdown()
    return out


# -- the parent: fresh processes, medians, the table --------------------------------------------
def worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPWISE_", "RAY_"))}
    # A normal install has bytecode; without it every fresh process compiles loopwise again.
    for name in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    # Single-threaded numeric libraries: the parallelism measured is the executor's own.
    env.update(dict.fromkeys(THREAD_VARIABLES, "1"))
    # Quiet local Ray: no usage stats, no token written to ~/.ray (as tests/ray_harness.py).
    env.update({"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"})
    return env


def measure_case(
    case: str,
    store: Path,
    *,
    executor: str = "inline",
    workers: int | None = None,
    iterations: int = 0,
) -> dict[str, Any]:
    command = [sys.executable, __file__, "--case", case, "--store", str(store)]
    command += ["--executor", executor, "--iterations", str(iterations)]
    if workers is not None:
        command += ["--workers", str(workers)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=worker_env(), cwd=ROOT)
    process_s = time.perf_counter() - start
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        sys.exit(f"{case} ({executor}) failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["process_s"] = process_s
    return result


def cli_available() -> bool:
    loopwise = Path(sys.executable).with_name("loopwise")
    probe = subprocess.run(
        [str(loopwise), "pipeline", "run", "--help"],
        capture_output=True,
        env=worker_env(),
        cwd=ROOT,
    )
    return probe.returncode == 0


def measure_cli(store: Path, *options: str) -> float:
    """Wall seconds of a whole ``loopwise pipeline run`` process (``--json``, to check states)."""
    loopwise = Path(sys.executable).with_name("loopwise")
    command = [str(loopwise), "--uri", str(store), "--project", PROJECT, "pipeline", "run"]
    command += [f"{FLOWS}:chain", "--json", *options]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=worker_env(), cwd=ROOT)
    wall_s = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"`{' '.join(command)}` failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    states = [step["state"] for step in json.loads(done.stdout)["steps"].values()]
    if not options and states != ["cached"] * CHAIN_STEPS:
        sys.exit(f"Expected a fully cached `loopwise pipeline run`, got step states {states}.")
    return wall_s


def measure_cli_floor() -> float:
    """Wall seconds of ``loopwise --version``: the CLI's own start-up, no pipeline at all."""
    loopwise = Path(sys.executable).with_name("loopwise")
    start = time.perf_counter()
    subprocess.run([str(loopwise), "--version"], capture_output=True, env=worker_env(), check=True)
    return time.perf_counter() - start


def calibrate(seconds: float) -> int:
    """Iterations of ``burn`` that take about ``seconds`` here."""
    sys.path.insert(0, str(HERE))
    import pipelines_flows as flows

    start = time.perf_counter()
    flows.burn(CALIBRATION_ITERATIONS, 1)
    per_iteration = (time.perf_counter() - start) / CALIBRATION_ITERATIONS
    return max(10_000, round(seconds / per_iteration))


def parallel_capacity(processes: int, seconds: float = 1.0) -> float:
    """Cores' worth of pure-Python work ``processes`` concurrent processes get done.

    ``processes`` on an idle machine with as many cores; less when other processes share it.
    The branches' speed-up cannot exceed it.
    """
    code = (
        f"import time\nstart = time.perf_counter()\nend = start + {seconds}\nn = 0\n"
        "while time.perf_counter() < end:\n    n += sum(i % 7 for i in range(1000))\n"
        "print(n)"
    )

    def batch(count: int) -> float:
        started = [
            subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
            for _ in range(count)
        ]
        return sum(int(p.communicate()[0]) for p in started)

    # The best of two single runs: a neighbour's burst during one would inflate the ratio.
    return batch(processes) / max(batch(1), batch(1))


@dataclass
class Series:
    """One table row's samples."""

    scenario: str
    executor: str
    key: str = "run_s"
    samples: list[dict[str, Any]] = field(default_factory=list)

    def values(self, key: str | None = None) -> list[float]:
        return [s[key or self.key] for s in self.samples if (key or self.key) in s]

    def median(self, key: str | None = None) -> float:
        return statistics.median(self.values(key))


def collect(
    parts: set[str], reps: int, iterations: int, scratch: Path, with_cli: bool, console: Any
) -> dict[str, Series]:
    cpus = os.cpu_count() or 1
    rows = {
        "chain-plain": Series("10 trivial steps: plain loop (floor)", "—"),
        "chain-inline": Series("10 trivial steps: cold", "inline"),
        "chain-local": Series("10 trivial steps: cold", f"local ({cpus} workers)"),
        "chain-warm": Series(
            "10 trivial steps: again in the same process, cache=False", "inline", "warm_uncached_s"
        ),
        "chain-warm-cached": Series(
            "10 trivial steps: cached re-run, same process", "inline", "warm_cached_s"
        ),
        "chain-cached": Series("10 trivial steps: cached re-run, fresh process: run()", "inline"),
        "chain-cached-process": Series(
            "10 trivial steps: cached re-run, fresh process: whole process", "inline", "process_s"
        ),
        "chain-cli": Series("10 trivial steps: cached `loopwise pipeline run`, whole process", "—"),
        "branches-plain": Series("4 CPU-bound branches: plain loop (floor)", "—"),
        "branches-inline": Series("4 CPU-bound branches", "inline (sequential)"),
        "branches-local-2": Series("4 CPU-bound branches", "local (2 workers)"),
        "branches-local-4": Series("4 CPU-bound branches", "local (4 workers)"),
        "branches-ray": Series("4 CPU-bound branches", f"ray ({cpus} CPUs)"),
    }
    if not with_cli:
        del rows["chain-cli"]
    rows = {k: v for k, v in rows.items() if k.split("-")[0] in parts}

    def step(key: str, label: str, rep: int, **options: Any) -> dict[str, Any]:
        store = scratch / f"{key}-{rep}"
        with console.status(f"{label} ({rep + 1}/{reps})…"):
            result = measure_case(options.pop("case"), store, **options)
        rows[key].samples.append(result)
        console.log(f"{label} {rep + 1}/{reps}: run {result['run_s']:.3f} s")
        return result

    for rep in range(reps):  # interleaved, so that load changes hit every row alike
        if "chain" in parts:
            step("chain-plain", "chain, plain loop", rep, case="chain-plain")
            cold = step("chain-inline", "chain, cold, inline", rep, case="chain-cold")
            rows["chain-warm"].samples.append(cold)
            rows["chain-warm-cached"].samples.append(cold)
            step("chain-local", "chain, cold, local", rep, case="chain-cold", executor="local")
            # A fresh process on the store the cold inline run filled.
            store = scratch / f"chain-inline-{rep}"
            with console.status(f"chain, cached re-run in a fresh process ({rep + 1}/{reps})…"):
                cached = measure_case("chain-cached", store)
            if cached["cached"] != CHAIN_STEPS:
                sys.exit(f"The re-run should be fully cached; it cached {cached['cached']} steps.")
            rows["chain-cached"].samples.append(cached)
            rows["chain-cached-process"].samples.append(cached)
            console.log(f"chain, cached re-run {rep + 1}/{reps}: run {cached['run_s']:.3f} s")
            if with_cli:
                # The CLI loads the file under a module name of its own, so its step ids (and cache
                # keys) differ from the imported module's: it fills its own store first.
                store = scratch / f"chain-cli-{rep}"
                with console.status(f"chain, `loopwise pipeline run` ({rep + 1}/{reps})…"):
                    measure_cli(store, "--executor", "inline")  # fills the store, untimed
                    wall_s = measure_cli(store)  # as users type it: the default executor
                    floor_s = measure_cli_floor()
                rows["chain-cli"].samples.append({"run_s": wall_s, "startup_s": floor_s})
                console.log(f"chain, cached CLI run {rep + 1}/{reps}: {wall_s:.3f} s")
        if "branches" in parts:
            for key, label, executor, workers in (
                ("branches-plain", "branches, plain loop", "inline", None),
                ("branches-inline", "branches, inline", "inline", None),
                ("branches-local-2", "branches, local 2", "local", 2),
                ("branches-local-4", "branches, local 4", "local", 4),
                ("branches-ray", "branches, ray", "ray", None),
            ):
                case = "branches-plain" if key == "branches-plain" else "branches"
                step(
                    key,
                    label,
                    rep,
                    case=case,
                    executor=executor,
                    workers=workers,
                    iterations=iterations,
                )
    return rows


def render(
    rows: dict[str, Series], cpus: int, branch_s: float, capacity: float, quick: bool
) -> Any:
    from rich.table import Table

    title = (
        f"Pipelines, medians of fresh processes — {cpus} cores (measured: {capacity:.1f} cores' "
        f"worth), ideal speed-up of the 4 branches ≈ {min(cpus, 4)}x, one branch ≈ {branch_s:.1f} s"
    )
    if quick:
        title += " — QUICK RUN"
    table = Table(title=title)
    for name, justify in (
        ("scenario", "left"),
        ("executor", "left"),
        ("median s", "right"),
        ("min-max s", "right"),
        ("start-up s", "right"),
        ("vs peer", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    floor = rows["chain-plain"].median() if "chain-plain" in rows else 0.0
    sequential = rows["branches-inline"].median() if "branches-inline" in rows else 0.0
    for key, row in rows.items():
        values = row.values()
        median = statistics.median(values)
        startup = row.values("startup_s") if row.key == "run_s" else []
        if key.startswith("branches") and key != "branches-plain":
            versus = f"{sequential / median:.2f}x speed-up"
            if key == "branches-ray":
                with_init = sequential / (median + statistics.median(startup))
                versus += f" ({with_init:.2f}x with ray.init)"
        elif key in ("chain-inline", "chain-local", "chain-warm"):
            versus = f"+{1000 * (median - floor) / CHAIN_STEPS:.1f} ms/step"
            if startup:
                without = statistics.median(v - s for v, s in zip(values, startup, strict=True))
                versus += f" ({1000 * (without - floor) / CHAIN_STEPS:+.1f} without start-up)"
        elif key in ("chain-cached", "chain-cached-process", "chain-cli"):
            versus = f"target < {CACHED_TARGET_S:.0f} s: " + ("met" if median < 1 else "MISSED")
        else:
            versus = "floor" if key.endswith("plain") else ""
        table.add_row(
            row.scenario,
            row.executor,
            f"{median:.3f}",
            f"{min(values):.3f}-{max(values):.3f}",
            f"{statistics.median(startup):.2f}" if startup else "",
            versus,
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, help="fresh processes per row (default 3)")
    parser.add_argument("--quick", action="store_true", help="0.5 s branches, one repetition")
    parser.add_argument(
        "--branch-s", type=float, help="seconds of work per CPU-bound branch (default 2.5)"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    # One measurement in this process, run by the parent in a fresh interpreter.
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--executor", default="inline", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--iterations", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--only",
        choices=("chain", "branches"),
        help="one part: the 10 trivial steps, or the 4 CPU-bound branches (default both)",
    )
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args)))
        return 0

    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 160)
    reps = args.repeats or (1 if args.quick else 3)
    branch_s = args.branch_s or (0.5 if args.quick else 2.5)
    cpus = os.cpu_count() or 1
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    parts = {args.only} if args.only else {"chain", "branches"}
    iterations = calibrate(branch_s) if "branches" in parts else 0
    capacity = [parallel_capacity(cpus)]
    console.log(
        f"One branch: {iterations:,} iterations of burn ≈ {branch_s} s here; {cpus} busy "
        f"processes get {capacity[0]:.2f} cores' worth of work done"
    )
    with_cli = "chain" in parts and cli_available()
    if "chain" in parts and not with_cli:
        console.log("`loopwise pipeline run` is not available: its row is skipped.")
    scratch = Path(tempfile.mkdtemp(prefix="loopwise-pipelines-bench-"))
    try:
        rows = collect(parts, reps, iterations, scratch, with_cli, console)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    capacity.append(parallel_capacity(cpus))
    measured_branch_s = rows["branches-plain"].median() / 4 if "branches" in parts else 0.0
    console.print(render(rows, cpus, measured_branch_s, min(capacity), args.quick))
    cached_s = rows["chain-cached"].median() if "chain" in parts else 0.0
    imports = [s["import_s"] for row in rows.values() for s in row.samples if "import_s" in s]
    console.print(
        f"Medians of {reps} fresh processes per row, each on a fresh store. Seconds are the "
        "run() call (the plain loops: the ten or five calls); a process's imports (loopwise and "
        f"the flows module, median {statistics.median(imports):.2f} s) are not in them except "
        "in the whole-process rows. Start-up is timed apart in the same process: for local, "
        "spawning that many workers until they have imported a step's modules (every run() "
        "starts its own pool, so this is also inside its seconds); for Ray, ray.init (not in "
        "its seconds: started before run(), as a long-lived process or cluster would be). "
        "The CLI row is a whole `loopwise pipeline run FILE:chain` process (default executor); "
        "its start-up is a whole `loopwise --version` process. "
        "+ms/step = (median - plain loop) / 10. Speed-up = sequential (inline) ÷ executor. "
        + (
            f"Target: a fully cached re-run under {CACHED_TARGET_S:.0f} s (got {cached_s:.3f} s). "
            if "chain" in parts
            else ""
        )
        + f"Cores' worth of work that {cpus} busy processes got done, before and after: "
        f"{capacity[0]:.2f} and {capacity[1]:.2f} (other processes on the machine lower it).",
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
        "benchmark": "pipelines",
        "reps": reps,
        "iterations": iterations,
        "branch_s": measured_branch_s,
        "parallel_capacity": capacity,
        "wall_s": time.perf_counter() - started,
        "machine": {
            "platform": platform.platform(),
            "cpus": cpus,
            "python": platform.python_version(),
            "load_avg_1min": [load_start, load_end],
        },
        "cli_row": with_cli,
        "rows": {
            key: {
                "scenario": row.scenario,
                "executor": row.executor,
                "median_s": row.median(),
                "samples": row.samples,
            }
            for key, row in rows.items()
        },
        "cached_rerun_s": cached_s if "chain" in parts else None,
        "passed": cached_s < CACHED_TARGET_S if "chain" in parts else None,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"Results written to {args.output}")
    return 1 if report["passed"] is False else 0


if __name__ == "__main__":
    sys.exit(main())
