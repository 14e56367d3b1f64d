"""Start-up cost: ``import loopwise`` and ``loopwise --help`` against ``import mlflow`` and ``mlflow --help``.

Each repetition is a fresh interpreter, timed from outside (wall clock, process start to exit).
CPU time (user + system) is shown beside it: it barely moves when other processes share the
machine, while wall time does. Also reports which heavy libraries each one loads. MLflow is measured when it is already
installed in ``.bench/mlflow-venv`` (``make bench`` creates it); this script never installs it.
Prints a table of medians and writes ``benchmarks/results/import_time.json``.

    .venv/bin/python benchmarks/import_time.py            # 5 repetitions (about 15 s)
    .venv/bin/python benchmarks/import_time.py --reps 11
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tracking import DEFAULT_MLFLOW_VENV, mlflow_version, venv_python

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "import_time.json"
HEAVY = ("sqlalchemy", "pandas", "httpx", "numpy", "pyarrow")
HELP_BUDGET_S = 0.5

# The floor under any Typer CLI: Typer and Rich imported, two commands, their help printed.
BARE_TYPER_HELP = """\
import sys
import typer

app = typer.Typer()


@app.command()
def first(count: int = 1) -> None:
    "One command."


@app.command()
def second() -> None:
    "Another."


sys.argv = ["bare", "--help"]
app()
"""

console = Console(width=None if sys.stdout.isatty() else 140)

# Prints, as the interpreter exits (after --help's SystemExit too), which heavy modules it loaded.
_REPORT_HEAVY = (
    "import atexit, json, sys\n"
    "atexit.register(lambda: print('HEAVY=' + json.dumps("
    f"[m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr))\n"
)


@dataclass
class Side:
    name: str
    version: str
    startup_s: float = 0.0  # `python -c pass`: the interpreter alone
    import_s: float = 0.0
    import_cpu_s: float = 0.0
    import_heavy: list[str] = field(default_factory=list)
    help_s: float = 0.0
    help_cpu_s: float = 0.0
    help_heavy: list[str] = field(default_factory=list)


def clean_env(keep_pythonpath: bool) -> dict[str, str]:
    env = dict(os.environ)
    names = ["LOOPWISE_URI", "LOOPWISE_PROJECT", "MLFLOW_TRACKING_URI"]
    if not keep_pythonpath:
        names.append("PYTHONPATH")  # Loopwise's source tree must not leak into MLflow's venv
    for name in names:
        env.pop(name, None)
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["DO_NOT_TRACK"] = "true"
    return env


def run_once(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def medians_s(command: list[str], env: dict[str, str], reps: int) -> tuple[float, float]:
    """Median wall and CPU seconds over ``reps`` fresh processes."""
    run_once(command, env)  # warm the file cache and the .pyc files; not counted
    runs = [run_once(command, env) for _ in range(reps)]
    return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)


def heavy_loaded(python: Path, code: str, env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [str(python), "-c", _REPORT_HEAVY + code], capture_output=True, text=True, env=env
    )
    for line in done.stderr.splitlines():
        if line.startswith("HEAVY="):
            loaded: list[str] = json.loads(line.removeprefix("HEAVY="))
            return loaded
    sys.exit(f"Could not tell what {code!r} loads (exit {done.returncode}):\n{done.stderr[-3000:]}")


def measure(
    name: str, version: str, python: Path, module: str, cli: str, env: dict[str, str], reps: int
) -> Side:
    """``cli`` is the code that runs the command line the way its console script does."""
    side = Side(name, version)
    with console.status(f"Timing {name}…"):
        side.startup_s, _ = medians_s([str(python), "-c", "pass"], env, reps)
        side.import_s, side.import_cpu_s = medians_s(
            [str(python), "-c", f"import {module}"], env, reps
        )
        side.import_heavy = heavy_loaded(python, f"import {module}", env)
        help_code = f"import sys\nsys.argv = [{name.lower()!r}, '--help']\n{cli}"
        side.help_s, side.help_cpu_s = medians_s([str(python), "-c", help_code], env, reps)
        side.help_heavy = heavy_loaded(python, help_code, env)
    return side


def loopwise_version(python: Path, env: dict[str, str]) -> str:
    probe = subprocess.run(
        [str(python), "-c", "import loopwise; print(loopwise.__version__)"],
        capture_output=True,
        text=True,
        env=env,
    )
    return probe.stdout.strip() or "?"


def render(sides: list[Side], reps: int) -> Table:
    table = Table(title=f"Start-up cost, medians of {reps} fresh processes")
    table.add_column("measurement", no_wrap=True)
    for side in sides:
        table.add_column(f"{side.name} {side.version}", justify="right", no_wrap=True)
    table.add_column("target", justify="center", no_wrap=True)

    def row(label: str, values: list[str], target: str = "") -> None:
        table.add_row(label, *values, target)

    row("python -c pass (interpreter alone)", [f"{s.startup_s:.3f} s" for s in sides])
    row("import (package), wall", [f"{s.import_s:.3f} s" for s in sides])
    row("  cpu (user + system)", [f"{s.import_cpu_s:.3f} s" for s in sides])
    for module in HEAVY:
        target = "no" if module in ("sqlalchemy", "pandas", "httpx") else ""
        row(
            f"  import loads {module}",
            ["yes" if module in s.import_heavy else "no" for s in sides],
            target,
        )
    row("--help, wall", [f"{s.help_s:.3f} s" for s in sides], f"< {HELP_BUDGET_S} s")
    row("  cpu (user + system)", [f"{s.help_cpu_s:.3f} s" for s in sides])
    row(
        "  --help loads",
        [", ".join(s.help_heavy) or "none" for s in sides],
    )
    return table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reps", type=int, default=5, help="fresh processes per figure (5)")
    parser.add_argument(
        "--mlflow-venv",
        type=Path,
        default=DEFAULT_MLFLOW_VENV,
        help="MLflow's virtual environment, used only if MLflow is installed there "
        "(default .bench/mlflow-venv)",
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="where the JSON results go"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_start = os.getloadavg()[0]
    python = Path(sys.executable)
    env = clean_env(keep_pythonpath=True)
    sides = [
        measure(
            "Loopwise",
            loopwise_version(python, env),
            python,
            "loopwise",
            "from loopwise.cli import main\nmain()",
            env,
            args.reps,
        )
    ]
    mlflow_python = venv_python(args.mlflow_venv.resolve())
    mlflow = mlflow_version(mlflow_python)
    if mlflow is not None:
        sides.append(
            measure(
                "MLflow",
                mlflow,
                mlflow_python,
                "mlflow",
                "from mlflow.cli import cli\ncli()",
                clean_env(keep_pythonpath=False),
                args.reps,
            )
        )
    with console.status("Timing a bare Typer app…"):
        floor_s, floor_cpu_s = medians_s([str(python), "-c", BARE_TYPER_HELP], env, args.reps)
    console.print(render(sides, args.reps))
    console.print(
        f"For scale: --help of a bare two-command Typer app takes {floor_s:.3f} s "
        f"(cpu {floor_cpu_s:.3f} s) here; that much of any Typer CLI's start-up is Typer and Rich.",
        highlight=False,
    )
    if mlflow is None:
        console.print(
            f"MLflow is not installed in {args.mlflow_venv}: Loopwise figures only "
            "(`make bench` installs it there).",
            highlight=False,
        )
    load_end = os.getloadavg()[0]
    if load_start > 1.0 or load_end > 1.5:
        console.print(
            f"[yellow]Load average (1 min) was {load_start:.2f} at the start and {load_end:.2f} at "
            "the end: other processes shared the machine, so timings are noisier.[/]"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "import_time",
        "reps": args.reps,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "sides": [asdict(side) for side in sides],
        "bare_typer_help_s": floor_s,
        "bare_typer_help_cpu_s": floor_cpu_s,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
