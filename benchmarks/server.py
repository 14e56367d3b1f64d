"""Server benchmark: 16 concurrent clients against Loopwise's and MLflow's tracking servers.

For each backend (SQLite, PostgreSQL) and each system, a fresh store and a real server process
on loopback take a closed-loop mix of batched metric writes, run reads and run searches from
separate client processes (``server_client.py``) for a fixed time. Then the server is killed
with SIGKILL and the store is asked how many metric values it holds: every value a client got a
2xx for must be there. Progress goes to stderr; the table to stdout and JSON to
``benchmarks/results/server.json``.

    .venv/bin/python benchmarks/server.py                   # 60 s per system and backend
    .venv/bin/python benchmarks/server.py --duration-s 10   # a quick look
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from server_client import (
    APIS,
    GET,
    LOG,
    MIX,
    SEARCH,
    SEARCH_FILTER,
    SEARCH_MAX_RESULTS,
    metric_keys,
)
from server_targets import (
    PROJECT,
    LoopwiseTarget,
    MlflowTarget,
    Target,
    TargetError,
    mlflow_has_psycopg,
)
from tracking import DEFAULT_MLFLOW_VENV, ensure_mlflow, worker_env

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLIENT = HERE / "server_client.py"
DEFAULT_OUTPUT = HERE / "results" / "server.json"
OPS = (LOG, GET, SEARCH)
ALL = "all requests"
SYSTEMS = ("loopwise", "mlflow")
BACKENDS = ("sqlite", "postgresql")
NAMES = {"loopwise": "Loopwise", "mlflow": "MLflow", "sqlite": "SQLite", "postgresql": "PostgreSQL"}

progress = Console(stderr=True)
console = Console(width=None if sys.stdout.isatty() else 150)


# -- one trial: one system on one backend ----------------------------------------------------------
@dataclass
class OpStats:
    requests: int
    per_s: float
    p50_ms: float
    p99_ms: float
    failed: int


@dataclass
class Trial:
    system: str
    backend: str
    rep: int
    elapsed_s: float
    ops: dict[str, OpStats]
    acked_values: int
    stored_values: int
    failures: dict[str, dict[str, int]]
    examples: list[dict[str, Any]] = field(default_factory=list)
    load_avg_1min: float = 0.0

    @property
    def durable(self) -> bool:
        return self.acked_values == self.stored_values


def percentile_ms(sorted_s: list[float], q: float) -> float:
    """Nearest-rank percentile, in milliseconds."""
    if not sorted_s:
        return float("nan")
    rank = max(1, -(-len(sorted_s) * q // 100))  # ceil
    return 1000 * sorted_s[int(rank) - 1]


def summarize(results: list[dict[str, Any]], elapsed_s: float) -> dict[str, OpStats]:
    stats = {}
    everything: list[float] = []
    failed_all = 0
    for op in (*OPS, ALL):
        if op == ALL:
            samples, failed = sorted(everything), failed_all
        else:
            samples = sorted(s for r in results for s in r["latencies_s"][op])
            failed = sum(sum(r["failures"][op].values()) for r in results)
            everything.extend(samples)
            failed_all += failed
        stats[op] = OpStats(
            requests=len(samples),
            per_s=len(samples) / elapsed_s,
            p50_ms=percentile_ms(samples, 50),
            p99_ms=percentile_ms(samples, 99),
            failed=failed,
        )
    return stats


def seed(target: Target, cfg: argparse.Namespace) -> str:
    """The project (or experiment) and the runs the searches look through; warms the server."""
    api = APIS[target.system](target.url, target.token, PROJECT)
    container = api.create_container()
    rng = random.Random(0)
    keys = metric_keys(cfg.width)
    run_id = ""
    for i in range(cfg.seed_runs):
        run_id = api.create_run(f"seed-{i}")
        api.log_batch(run_id, 0, {k: rng.random() for k in keys}).raise_for_status()
    if run_id:
        api.get_run(run_id).raise_for_status()
    api.search().raise_for_status()
    return container


def run_clients(target: Target, container: str, cfg: argparse.Namespace) -> list[dict[str, Any]]:
    """Start the clients, let each create its run, release them together, collect results."""
    clients = []
    for i in range(cfg.clients):
        command = [
            sys.executable,
            str(CLIENT),
            "--system",
            target.system,
            "--url",
            target.url,
            "--token",
            target.token,
            "--container",
            container,
            "--client",
            str(i),
            "--width",
            str(cfg.width),
            "--duration-s",
            str(cfg.duration_s),
        ]
        stderr = (target.folder / f"client-{i}.err").open("w")
        clients.append(
            subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=worker_env(),
            )
        )
        stderr.close()
    for i, client in enumerate(clients):
        assert client.stdout is not None
        if not client.stdout.readline().startswith('{"ready"'):
            client.wait()
            err = (target.folder / f"client-{i}.err").read_text()[-2000:]
            for other in clients:
                other.kill()
            raise TargetError(f"client {i} could not create its run:\n{err}")
    for client in clients:
        assert client.stdin is not None
        client.stdin.write("go\n")
        client.stdin.flush()
    started = time.monotonic()
    label = f"{NAMES[target.system]} on {NAMES[cfg.backend]}"
    with progress.status(f"{label}: {cfg.clients} clients for {cfg.duration_s:.0f} s…") as status:
        while (
            any(c.poll() is None for c in clients) and time.monotonic() - started < cfg.duration_s
        ):
            time.sleep(1)
            left_s = max(0, cfg.duration_s - (time.monotonic() - started))
            status.update(f"{label}: {cfg.clients} clients, {left_s:.0f} s left…")
        status.update(f"{label}: waiting for the last answers…")
        results = []
        for i, client in enumerate(clients):
            out, _ = client.communicate(timeout=cfg.duration_s + 300)
            lines = out.strip().splitlines()
            if client.returncode != 0 or not lines:
                err = (target.folder / f"client-{i}.err").read_text()[-2000:]
                raise TargetError(f"client {i} failed (exit {client.returncode}):\n{err}")
            results.append(json.loads(lines[-1]))
    return results


def run_trial(target: Target, cfg: argparse.Namespace, rep: int) -> Trial:
    label = f"{NAMES[target.system]} on {NAMES[cfg.backend]}"
    started = time.monotonic()
    progress.log(f"{label}: starting the server on a fresh store…")
    target.start(timeout_s=cfg.start_timeout_s)
    try:
        progress.log(f"{label}: up in {time.monotonic() - started:.0f} s; seeding runs…")
        container = seed(target, cfg)
        results = run_clients(target, container, cfg)
        load = os.getloadavg()[0]
    finally:
        target.kill()  # SIGKILL: nothing may flush before the count
    run_ids = [r["run_id"] for r in results]
    stored = target.stored_values(run_ids, metric_keys(cfg.width))
    elapsed_s = statistics.mean(r["elapsed_s"] for r in results)
    failures: dict[str, dict[str, int]] = {op: {} for op in OPS}
    for r in results:
        for op, counts in r["failures"].items():
            for why, n in counts.items():
                failures[op][why] = failures[op].get(why, 0) + n
    trial = Trial(
        system=target.system,
        backend=cfg.backend,
        rep=rep,
        elapsed_s=elapsed_s,
        ops=summarize(results, elapsed_s),
        acked_values=sum(r["acked_values"] for r in results),
        stored_values=sum(stored.values()),
        failures=failures,
        examples=[e for r in results for e in r["examples"]][:10],
        load_avg_1min=load,
    )
    everything = trial.ops[ALL]
    progress.log(
        f"{label}: {everything.per_s:,.0f} requests/s, p50 {everything.p50_ms:.1f} ms, "
        f"p99 {everything.p99_ms:.1f} ms, {everything.failed} failed; "
        f"{trial.acked_values:,} values acknowledged, {trial.stored_values:,} stored → "
        f"{'PASS' if trial.durable else 'FAIL'}"
    )
    for example in trial.examples[:3]:
        progress.log(f"[red]{label} failed request:[/] {json.dumps(example)[:800]}")
    return trial


# -- report ---------------------------------------------------------------------------------------
def median_stats(trials: list[Trial], op: str) -> OpStats | None:
    if not trials:
        return None
    med = statistics.median
    return OpStats(
        requests=int(med(t.ops[op].requests for t in trials)),
        per_s=med(t.ops[op].per_s for t in trials),
        p50_ms=med(t.ops[op].p50_ms for t in trials),
        p99_ms=med(t.ops[op].p99_ms for t in trials),
        failed=sum(t.ops[op].failed for t in trials),
    )


def render(trials: list[Trial], cfg: argparse.Namespace, versions: dict[str, str]) -> Table:
    title = (
        f"{cfg.clients} clients, {cfg.duration_s:.0f} s each: Loopwise {versions['loopwise']} vs "
        f"MLflow {versions.get('mlflow', '—')}"
    )
    if cfg.reps > 1:
        title += f", medians of {cfg.reps}"
    table = Table(title=title)
    columns = ("backend", "operation", "Loopwise req/s", "p50 ms", "p99 ms")
    columns += ("MLflow req/s", "p50 ms", "p99 ms", "req/s ratio", "p99 ratio")
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i < 2 else "right", no_wrap=True)
    for backend in cfg.backends:
        for op in (*OPS, ALL):
            sides = []
            for system in SYSTEMS:
                picked = [t for t in trials if t.system == system and t.backend == backend]
                sides.append(median_stats(picked, op))
            lw, ml = sides
            if lw is None and ml is None:
                continue
            cells = [NAMES[backend], f"{op} (x{cfg.width})" if op == LOG else op]
            for side in (lw, ml):
                if side is None:
                    cells += ["not run", "", ""]
                else:
                    failed = f" [red]({side.failed} failed)[/]" if side.failed else ""
                    cells += [
                        f"{side.per_s:,.0f}{failed}",
                        f"{side.p50_ms:.1f}",
                        f"{side.p99_ms:.0f}",
                    ]
            if lw and ml and ml.per_s > 0 and lw.p99_ms > 0:
                cells += [f"{lw.per_s / ml.per_s:.1f}x", f"{ml.p99_ms / lw.p99_ms:.1f}x"]
            else:
                cells += ["—", "—"]
            table.add_row(*cells, end_section=op == ALL)
    return table


def render_durability(trials: list[Trial]) -> Table:
    table = Table(title="Durability after SIGKILL: acknowledged metric values vs stored")
    for name in ("backend", "system", "rep", "acknowledged", "stored", "failed requests", "result"):
        table.add_column(name, justify="right" if name not in ("backend", "system") else "left")
    for t in trials:
        table.add_row(
            NAMES[t.backend],
            NAMES[t.system],
            str(t.rep + 1),
            f"{t.acked_values:,}",
            f"{t.stored_values:,}",
            str(t.ops[ALL].failed),
            "[green]PASS[/]" if t.durable else "[red]FAIL[/]",
        )
    return table


def notes(cfg: argparse.Namespace) -> list[str]:
    mix = ", ".join(f"{MIX.count(op)} {op}" for op in OPS)
    workers = cfg.mlflow_workers or "4 (its default)"
    return [
        f"Each client (a separate process, httpx, one keep-alive connection) loops over {mix} "
        f"per 10 requests, each request waiting for the previous one (closed loop).",
        f"log_metrics: {cfg.width} values of one run in one request, synchronous (Loopwise POST "
        "/api/v1/metrics; MLflow POST runs/log-batch). get_run: the client's own run. "
        f"search_runs: {SEARCH_FILTER!r}, max {SEARCH_MAX_RESULTS}, over {cfg.seed_runs} seeded "
        f"runs + {cfg.clients} client runs.",
        "req/s counts answered 2xx requests over the measured time; latencies are the client's "
        "wall time per request (p99: nearest rank). Ratios > 1 favour Loopwise "
        "(req/s: Loopwise ÷ MLflow; p99: MLflow ÷ Loopwise).",
        f"Servers: loopwise server (one uvicorn process); mlflow server with {workers} uvicorn "
        "workers. Both without access logs. Clients and server share the machine's "
        f"{os.cpu_count()} CPUs.",
    ]


# -- main -----------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration-s", type=float, default=60.0, help="load per trial (60)")
    parser.add_argument("--clients", type=int, default=16, help="client processes (16)")
    parser.add_argument("--width", type=int, default=10, help="values per log request (10)")
    parser.add_argument("--seed-runs", type=int, default=100, help="runs for searches (100)")
    parser.add_argument("--reps", type=int, default=1, help="repetitions; medians shown (1)")
    parser.add_argument(
        "--backends", default=",".join(BACKENDS), help="comma-separated: sqlite,postgresql"
    )
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), help="comma-separated: loopwise,mlflow"
    )
    parser.add_argument(
        "--mlflow-workers", type=int, help="mlflow server --workers (default: MLflow's, 4)"
    )
    parser.add_argument("--start-timeout-s", type=float, default=240.0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--mlflow-venv",
        type=Path,
        default=DEFAULT_MLFLOW_VENV,
        help="virtual environment for MLflow, created when missing (default .bench/mlflow-venv)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results")
    args = parser.parse_args(argv)
    args.backends = [b for b in args.backends.split(",") if b]
    args.systems = [s for s in args.systems.split(",") if s]
    for value, known in ((args.backends, BACKENDS), (args.systems, SYSTEMS)):
        unknown = set(value) - set(known)
        if unknown:
            parser.error(f"expected some of {', '.join(known)}, got {', '.join(sorted(unknown))}")
    return args


def postgres_server() -> Any:
    """The test suite's throwaway PostgreSQL server, or None when its binaries are missing."""
    if not (glob.glob("/usr/lib/postgresql/*/bin/initdb") or shutil.which("initdb")):
        return None
    sys.path.insert(0, str(ROOT))
    from tests.services import PostgresServer

    return PostgresServer().start()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    import loopwise

    versions = {"loopwise": loopwise.__version__}
    skipped: dict[str, str] = {}  # "system/backend" or "system" → why it did not run
    mlflow_venv = args.mlflow_venv.resolve()
    if "mlflow" in args.systems:
        try:
            _, versions["mlflow"] = ensure_mlflow(mlflow_venv)
        except SystemExit as exc:
            skipped["mlflow"] = f"MLflow could not be installed: {exc.code}"
    pg = None
    if "postgresql" in args.backends:
        progress.log("Starting a throwaway PostgreSQL server…")
        pg = postgres_server()
        if pg is None:
            skipped["postgresql"] = "PostgreSQL binaries not found (apt-get install postgresql)"
        elif "mlflow" in args.systems and "mlflow" not in skipped:
            why = mlflow_has_psycopg(mlflow_venv, worker_env())
            if why:
                skipped["mlflow/postgresql"] = why

    trials: list[Trial] = []
    try:
        with tempfile.TemporaryDirectory(prefix="loopwise-bench-server-") as tmp:
            for rep in range(args.reps):
                for backend in args.backends:
                    if backend in skipped:
                        continue
                    args.backend = backend
                    # Alternate which system goes first, so drifting load favours neither.
                    order = args.systems if rep % 2 == 0 else args.systems[::-1]
                    for system in order:
                        if system in skipped or f"{system}/{backend}" in skipped:
                            continue
                        folder = Path(tmp) / f"{system}-{backend}-{rep}"
                        db_url = pg.create_database(migrated=False) if backend != "sqlite" else None
                        env = worker_env()
                        if system == "loopwise":
                            env["LOOPWISE_ARTIFACTS"] = str(folder / "artifacts")
                            target: Target = LoopwiseTarget(folder, db_url, env)
                        else:
                            target = MlflowTarget(
                                folder, db_url, env, mlflow_venv, args.mlflow_workers
                            )
                        try:
                            trials.append(run_trial(target, args, rep))
                        except TargetError as exc:
                            if system == "loopwise":
                                raise
                            skipped[f"{system}/{backend}"] = str(exc)
                            progress.log(f"[red]MLflow on {NAMES[backend]} did not run:[/] {exc}")
    finally:
        if pg is not None:
            pg.stop()

    wall_s = time.perf_counter() - started
    console.print(render(trials, args, versions))
    for line in notes(args):
        console.print(line, highlight=False)
    for what, why in skipped.items():
        console.print(f"[yellow]Not run: {what}: {why}[/]", highlight=False)
    console.print(render_durability(trials))
    durable = all(t.durable for t in trials)
    console.print(f"Durability: {'[green]PASS[/]' if durable else '[red]FAIL[/]'}")
    loads = [t.load_avg_1min for t in trials]
    console.print(
        f"Total wall time {wall_s:.0f} s; load average (1 min) at the end of each trial: "
        f"{', '.join(f'{x:.1f}' for x in loads)} on {os.cpu_count()} CPUs.",
        highlight=False,
    )

    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "server",
        "wall_s": wall_s,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "config": {
            k: v for k, v in vars(args).items() if k not in ("mlflow_venv", "output", "backend")
        },
        "versions": versions,
        "skipped": skipped,
        "durable": durable,
        "trials": [asdict(t) for t in trials],
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"Results written to {args.output}")
    return 0 if durable else 1


if __name__ == "__main__":
    sys.exit(main())
