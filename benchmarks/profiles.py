"""Profile benchmark: rows per second and peak memory of profiling a large Parquet file.

Builds Parquet files of 1M and 10M rows by resampling the ACS employment table (19 columns)
with NumPy, one row group at a time so that no file ever sits in memory whole. Each file is
then profiled in a fresh subprocess: Loopwise's chunked ``profile`` (sketches, batch by batch),
and as a peer pandas reading the file whole and computing the same summaries (describe,
quantiles, nunique, value_counts). Last, the overhead ``log_dataset`` pays for keeping a
profile, on the ACS file itself. Table to stdout, JSON to ``benchmarks/results/profiles.json``.

    .venv/bin/python benchmarks/profiles.py                        # 1M and 10M rows
    .venv/bin/python benchmarks/profiles.py --rows 1000000 --peer-max-rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ACS = ROOT / "src" / "loopwise" / "examples" / "acs_employment_ma.parquet"
DEFAULT_OUTPUT = HERE / "results" / "profiles.json"
ROW_GROUP_ROWS = 500_000


def build_file(source: Path, rows: int, path: Path, seed: int = 0) -> None:
    """``rows`` rows drawn with replacement from ``source``, written one row group at a time."""
    table = pq.read_table(source)
    rng = np.random.default_rng(seed)
    with pq.ParquetWriter(path, table.schema, compression="zstd") as writer:
        for start in range(0, rows, ROW_GROUP_ROWS):
            size = min(ROW_GROUP_ROWS, rows - start)
            writer.write_table(table.take(pa.array(rng.integers(0, table.num_rows, size))))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(system: str, path: Path) -> dict[str, Any]:
    """Profile ``path`` with one system, in this (fresh) process."""
    start = time.perf_counter()
    if system == "loopwise":
        from loopwise.data import profile

        result = profile(path)
        rows = result.num_rows
    else:
        import pandas as pd

        frame = pd.read_parquet(path)
        numeric = frame.select_dtypes("number")
        numeric.describe(percentiles=[0.01, 0.25, 0.5, 0.75, 0.99])
        frame.isna().sum()
        frame.nunique()
        for name in frame.columns.difference(numeric.columns):
            frame[name].value_counts().head(10)
        rows = len(frame)
    return {"rows": rows, "seconds": time.perf_counter() - start, "peak_rss_mb": _peak_rss_mb()}


def run_worker(system: str, path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", system, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def log_dataset_overhead(source: Path) -> dict[str, Any]:
    """Seconds ``log_dataset`` takes on the ACS file, and how many of them the profile takes."""
    import loopwise as lw
    from loopwise.data.profiles import table_profile

    table = pq.read_table(source)
    with tempfile.TemporaryDirectory() as tmp:
        lw.init(project="bench", uri=Path(tmp) / "store")
        start = time.perf_counter()
        lw.log_dataset(table, name="acs")
        total_s = time.perf_counter() - start
        lw.shutdown()
    start = time.perf_counter()
    table_profile(table)
    profile_s = time.perf_counter() - start
    return {"rows": table.num_rows, "log_dataset_s": total_s, "profile_s": profile_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument(
        "--peer-max-rows",
        type=int,
        default=1_000_000,
        help="Run the pandas peer only up to this many rows (it loads the file whole).",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--worker", nargs=2, metavar=("SYSTEM", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], Path(args.worker[1]))))
        return
    err = Console(stderr=True)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="loopwise-bench-") as tmp:
        for rows in args.rows:
            path = Path(tmp) / f"acs-{rows}.parquet"
            err.print(f"building {rows:,} rows …")
            build_file(ACS, rows, path)
            size_mb = path.stat().st_size / 2**20
            systems = ["loopwise"] + (["pandas"] if rows <= args.peer_max_rows else [])
            for system in systems:
                err.print(f"  {system} …")
                measured = run_worker(system, path)
                results.append({"system": system, "file_mb": size_mb, **measured})
            path.unlink()
    overhead = log_dataset_overhead(ACS)

    out = Table(title=f"profiling ACS resampled, {pq.read_schema(ACS).__len__()} columns")
    for column in ("system", "rows", "file MB", "seconds", "rows/s", "peak RSS MB"):
        out.add_column(column, justify="left" if column == "system" else "right")
    for r in results:
        out.add_row(
            r["system"],
            f"{r['rows']:,}",
            f"{r['file_mb']:.0f}",
            f"{r['seconds']:.1f}",
            f"{r['rows'] / r['seconds']:,.0f}",
            f"{r['peak_rss_mb']:.0f}",
        )
    console = Console()
    console.print(out)
    share = overhead["profile_s"] / overhead["log_dataset_s"]
    console.print(
        f"log_dataset on the ACS file ({overhead['rows']:,} rows): "
        f"{overhead['log_dataset_s']:.2f} s, of which the profile {overhead['profile_s']:.2f} s "
        f"({share:.0%})"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "results": results,
                "log_dataset_overhead": overhead,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
