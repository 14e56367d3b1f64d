"""Outcome benchmark: how fast delayed labels are recorded and looked up.

For each backend (SQLite; PostgreSQL when ``--postgres URL`` is given), records N outcomes in
one call (all new), records them again (all duplicates: the idempotent replay), and looks all
N up by id. As a peer, the same rows go through the DB-API directly: ``sqlite3`` with
``executemany("INSERT OR IGNORE …")`` into a table of the same shape (no checks, no audit).
Table to stdout, JSON to ``benchmarks/results/outcomes.json``.

    .venv/bin/python benchmarks/outcomes.py --rows 100000
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from loopwise.store import open_store

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "outcomes.json"


def _rate(rows: int, seconds: float) -> float:
    return rows / seconds if seconds else float("inf")


def loopwise_rates(uri: str, rows: int) -> dict[str, float]:
    store = open_store(uri)
    store.get_or_create_project("bench")
    outcomes = [(f"req-{i:08d}:0", i % 2) for i in range(rows)]
    ids = [o[0] for o in outcomes]
    try:
        started = time.perf_counter()
        receipt = store.record_outcomes("bench", "churn", outcomes)
        new_s = time.perf_counter() - started
        assert receipt.new == rows, receipt
        started = time.perf_counter()
        receipt = store.record_outcomes("bench", "churn", outcomes)
        dup_s = time.perf_counter() - started
        assert receipt.duplicates == rows, receipt
        started = time.perf_counter()
        found = store.get_outcomes("bench", "churn", ids)
        get_s = time.perf_counter() - started
        assert len(found) == rows
    finally:
        store.close()
    return {
        "record_new_per_s": _rate(rows, new_s),
        "record_duplicates_per_s": _rate(rows, dup_s),
        "get_per_s": _rate(rows, get_s),
    }


def sqlite3_rates(path: Path, rows: int) -> dict[str, float]:
    """The peer: sqlite3's executemany, WAL, one transaction, no checks."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE outcomes (project_id INTEGER, deployment TEXT, request_id TEXT, "
        "value TEXT, timestamp_ms INTEGER, received_ms INTEGER, "
        "PRIMARY KEY (project_id, deployment, request_id))"
    )
    now = int(time.time() * 1000)
    data = [(1, "churn", f"req-{i:08d}:0", str(i % 2), now, now) for i in range(rows)]
    rates = {}
    for name in ("record_new_per_s", "record_duplicates_per_s"):
        started = time.perf_counter()
        with conn:
            conn.executemany("INSERT OR IGNORE INTO outcomes VALUES (?, ?, ?, ?, ?, ?)", data)
        rates[name] = _rate(rows, time.perf_counter() - started)
    ids = [d[2] for d in data]
    started = time.perf_counter()
    found = 0
    for start in range(0, rows, 5000):
        part = ids[start : start + 5000]
        marks = ",".join("?" * len(part))
        found += len(
            conn.execute(
                "SELECT request_id, value FROM outcomes WHERE project_id = 1 AND deployment = ? "
                f"AND request_id IN ({marks})",
                ["churn", *part],
            ).fetchall()
        )
    rates["get_per_s"] = _rate(rows, time.perf_counter() - started)
    conn.close()
    assert found == rows
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--postgres", help="A postgresql+psycopg:// URL of an empty database.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["loopwise (SQLite)"] = loopwise_rates(str(Path(tmp) / "store"), args.rows)
        results["sqlite3 executemany (peer)"] = sqlite3_rates(Path(tmp) / "peer.db", args.rows)
        if args.postgres:
            results["loopwise (PostgreSQL)"] = loopwise_rates(args.postgres, args.rows)
    table = Table(title=f"Outcomes: {args.rows:,} in one call (rows per second)")
    for column in ("backend", "record (new)", "record (duplicates)", "get by id"):
        table.add_column(column, justify="right" if column != "backend" else "left")
    for name, rates in results.items():
        table.add_row(name, *(f"{v:,.0f}" for v in rates.values()))
    Console().print(table)
    report: dict[str, Any] = {"rows": args.rows, "machine": platform.platform(), **results}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
