"""The ACS stream of the autopilot suite: the demo's replay (``loopwise.examples.demo_autopilot``)
of ACS 2016-2018 as 36 monthly windows under the demo's policy: real drift (benign: no churn
expected), a simulated shock from window 15 on, and ``AGEP`` in months in window 31. A replay's
seed draws which people fall in which month, and who the shock hits. ACS PUMS (US Census
Bureau, public domain), as the project ships it (``loopwise.examples.load_acs``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

import loopwise as lw
from loopwise.autopilot.report import write_report
from loopwise.data import attach_suite
from loopwise.examples import ACS_FEATURES, ACS_LABEL, load_acs
from loopwise.examples.demo_autopilot import BUG_WINDOW, SHOCK_WINDOW, Replay, replay
from loopwise.examples.retraining_pipeline import acs_types
from loopwise.examples.training_pipeline import candidate, training_suite

__all__ = ["ACS_TARGETS", "run_acs"]

ACS_TARGETS = (
    "after the shock, within 1 point of the oracle within 2 windows; at most a third of the "
    "oracle's retrains; no promotion of a worse model; no retrain before the shock (benign "
    f"drift); the data bug escalated in window {BUG_WINDOW}"
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


def _post_change_windows(found: Replay) -> int | None:
    """Windows from the shock until a model promoted after it serves every row (the window
    after its promotion)."""
    for decision in found.decisions:
        window = found.window_of(decision.at_ms)
        if decision.kind == "promote" and window >= SHOCK_WINDOW:
            return window + 1 - SHOCK_WINDOW
    return None


def run_acs(seed: int, rows: int | None, folder: Path, report: Path | None) -> dict[str, Any]:
    """One replay in a store of its own; its summary (and its HTML report at ``report``)."""
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
        summary["benign_churn"] = sum(
            1
            for d in found.decisions
            if d.kind == "retrain" and 0 <= found.window_of(d.at_ms) < SHOCK_WINDOW
        )
        summary["post_change_windows"] = _post_change_windows(found)
        if report is not None:
            write_report(
                report,
                deployment=f"ACS 2016-2018 (seed {seed})",
                starts_ms=[w.start_ms for w in found.windows],
                series=found.accuracy,
                labels=[w.situation for w in found.windows],
                decisions=found.decisions,
            )
        return summary
    finally:
        lw.shutdown()
