"""The autopilot on the demo's three situations (issue 5's evaluation), over several replays.

Each replay (``loopwise.examples.demo_autopilot.replay``) runs ACS 2016-2018 as 36 monthly
windows through ``employment-prod`` under the demo's policy: real drift, a simulated shock
from window 15 on, and ``AGEP`` in months in window 31. A replay's seed draws which people
fall in which month, and who the shock hits. Per replay: mean accuracy of the static 2015 model,
the autopilot and the per-window oracle; the autopilot's retrains and promotions against the
oracle's; windows from the shock until the autopilot is within a point of the oracle (three
windows in a row); the window the data bug was escalated in; and how many promotions put a
model in place that did worse than the one it replaced over the next three windows. The
table shows each replay and the medians.

    python benchmarks/autopilot.py [--seeds 3] [--rows N]   (make bench-autopilot)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

import loopwise as lw
from loopwise.data import attach_suite
from loopwise.examples import ACS_FEATURES, ACS_LABEL, load_acs
from loopwise.examples.demo_autopilot import BUG_WINDOW, SHOCK_WINDOW, Replay, replay
from loopwise.examples.retraining_pipeline import acs_types
from loopwise.examples.training_pipeline import candidate, training_suite

TARGETS = (
    "after the shock, within 1 point of the oracle within 2 windows; at most a third of the "
    "oracle's retrains; no promotion of a worse model; the data bug escalated in window "
    f"{BUG_WINDOW}"
)


def _production() -> int:
    """The 2015 model, as the demo trains it: gradient boosting on all of 2015."""
    frame = load_acs([2015])
    dataset = lw.log_dataset(frame, name="acs-ma-2015", split="train")
    attach_suite("acs-ma-2015", training_suite(frame[ACS_FEATURES]), on_failure="warn")
    model, _ = candidate("gradient-boosting", False, 2015)
    with lw.start_run(name="gradient-boosting-2015") as run:
        run.use(dataset)
        model.fit(frame[ACS_FEATURES], frame[ACS_LABEL])
        version = run.log_model(model, name="employment", input_example=frame[ACS_FEATURES].head(5))
    return version.version


def _worse_promotions(found: Replay) -> int:
    """Promotions whose new model scored below the one it replaced over the next three
    windows (the bug window left out), by more than half a point."""
    worse = 0
    for decision in found.decisions:
        if decision.kind != "promote":
            continue
        new, old = decision.state["production"], decision.evidence["replaced"]
        start = found.window_of(decision.at_ms) + 1
        chosen = [w for w in found.windows[start : start + 4] if w.index != BUG_WINDOW][:3]
        if not chosen:
            continue
        rows = np.concatenate([w.rows[ACS_LABEL].to_numpy() for w in chosen])
        typed = acs_types(pd.concat([w.rows[[*ACS_FEATURES, ACS_LABEL]] for w in chosen]))
        typed = typed[ACS_FEATURES]
        scores = {
            v: float((lw.models.load(f"employment/{v}").predict(typed) == rows).mean())
            for v in (new, old)
        }
        worse += scores[new] < scores[old] - 0.005
    return worse


def run_once(seed: int, rows: int | None, folder: Path) -> dict[str, Any]:
    lw.init(project="bench", uri=folder / f"seed-{seed}")
    try:
        production = _production()
        data = load_acs([2016, 2017, 2018])
        found = replay(
            data, production, rows_per_window=rows, seed=seed, console=Console(quiet=True)
        )
        summary = found.summary()
        summary["worse_promotions"] = _worse_promotions(found)
        auto, oracle = found.accuracy["autopilot"], found.accuracy["oracle"]
        summary["gap_at_shock_plus_2"] = oracle[SHOCK_WINDOW + 2] - auto[SHOCK_WINDOW + 2]
        return summary
    finally:
        lw.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="Replays, each with its own seed.")
    parser.add_argument("--rows", type=int, default=None, help="Rows per window (default: all).")
    args = parser.parse_args()
    console = Console(width=220)
    results = []
    with tempfile.TemporaryDirectory(prefix="loopwise-bench-autopilot-") as tmp:
        for seed in range(2016, 2016 + args.seeds):
            started = time.perf_counter()
            results.append(run_once(seed, args.rows, Path(tmp)))
            console.print(f"replay seed {seed}: {time.perf_counter() - started:.0f} s")
    table = Table(title=f"Autopilot on ACS 2016-2018, 36 monthly windows ({args.seeds} replays)")
    columns = [
        "replay",
        "static acc.",
        "autopilot acc.",
        "oracle acc.",
        "autopilot - oracle",
        "retrains (oracle)",
        "promotions",
        "worse promotions",
        "windows to recover",
        "gap at shock+2",
        "bug escalated in window",
        "replay s",
    ]
    for column in columns:
        table.add_column(column, justify="right")

    def row(name: str, r: dict[str, Any]) -> list[str]:
        acc = r["mean_accuracy"]
        return [
            name,
            f"{acc['static 2015 model']:.4f}",
            f"{acc['autopilot']:.4f}",
            f"{acc['oracle']:.4f}",
            f"{acc['autopilot'] - acc['oracle']:+.4f}",
            f"{r['retrains']} ({r['oracle_retrains']})",
            str(r["promotions"]),
            str(r["worse_promotions"]),
            str(r["windows_to_recover"]),
            f"{r['gap_at_shock_plus_2']:+.4f}",
            str(r["bug_escalated_in_window"]),
            f"{r['seconds']:.0f}",
        ]

    for i, result in enumerate(results):
        table.add_row(*row(f"seed {2016 + i}", result))

    def median(key: str, sub: str | None = None) -> float:
        values = [r[key][sub] if sub else r[key] for r in results]
        return float(statistics.median(v if v is not None else float("nan") for v in values))

    medians = {
        "mean_accuracy": {k: median("mean_accuracy", k) for k in results[0]["mean_accuracy"]},
        **{
            k: median(k)
            for k in (
                "retrains",
                "oracle_retrains",
                "promotions",
                "worse_promotions",
                "gap_at_shock_plus_2",
                "seconds",
            )
        },
        "windows_to_recover": median("windows_to_recover"),
        "bug_escalated_in_window": median("bug_escalated_in_window"),
    }
    cells = row("median", medians)
    cells[5] = f"{medians['retrains']:.0f} ({medians['oracle_retrains']:.0f})"
    cells[6:9] = [
        f"{medians['promotions']:.0f}",
        f"{medians['worse_promotions']:.0f}",
        f"{medians['windows_to_recover']:.0f}",
    ]
    cells[10] = f"{medians['bug_escalated_in_window']:.0f}"
    table.add_row(*cells, style="bold")
    console.print(table)
    console.print(f"Targets: {TARGETS}.")


if __name__ == "__main__":
    main()
