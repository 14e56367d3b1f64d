"""The demo's third act: the autopilot runs ``employment-prod`` through 2016-2018.

The ACS years are replayed as 36 windows, one per month of survey data (a random twelfth of a
survey year, with outcomes arriving as it is served). Replay time is compressed: a window is
one day of the prediction log (``WINDOW_DAYS``), so the policy speaks of days where a live
deployment would speak of months. The deployment
answers every request with the version its traffic plan assigns, and the autopilot's
controller ticks four times a window (``lw.autopilot.run_once``). Three situations, all stated
here so that nothing is hidden:

1. **Real drift** (2016-2018 as surveyed): feature distributions move, accuracy barely does;
   the autopilot should notice and not churn models.
2. **A simulated labour-market shock** from ``SHOCK_WINDOW`` on (an injected concept shift):
   70% of the employed people aged 20-39 without a bachelor's degree (``SCHL`` below 21)
   lose their jobs, so the label changes for the same inputs. The autopilot should retrain on
   the traffic since the drop, gate, canary and promote.
3. **An upstream data bug** in ``BUG_WINDOW``: ``AGEP`` arrives in months. Validation should
   catch it in that window; nothing is retrained on it or promoted, and a person is alerted.

For comparison, the static 2015 model and an "oracle" retrained at the end of every window
on that window's labelled traffic (as it arrived) see the same rows. The HTML report draws
the three accuracy lines with the autopilot's decisions on the time axis.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

import loopwise as lw
from loopwise import autopilot
from loopwise.autopilot.replay import Replayer
from loopwise.autopilot.report import write_report
from loopwise.examples import ACS_FEATURES, ACS_LABEL
from loopwise.examples.retraining_pipeline import acs_types
from loopwise.monitoring import log_outcomes

__all__ = ["BUG_WINDOW", "DEPLOYMENT", "SHOCK_WINDOW", "Replay", "policy_text", "replay"]

DEPLOYMENT = "employment-prod"
START = pd.Timestamp("2016-01-01", tz="UTC")
WINDOW_DAYS = 1
TICKS_PER_WINDOW = 4
SHOCK_WINDOW = 15  # the survey's April 2017
BUG_WINDOW = 31  # the survey's August 2018
DAY_MS = 86_400_000
LINE_NAMES = {"oracle": "retrained every window"}
"""How the report names the lines: the "oracle" is retrained at the end of every window on that
window's labels as they arrive; it is no upper bound (the autopilot beats it over the stream)."""


ALLOWED = autopilot.OperatorSettings(
    pipelines=("loopwise.examples.retraining_pipeline:employment_retraining",)
)
"""The demo runs its own controller, so it is the operator: it allows its own pipeline."""


def policy_text() -> str:
    """The demo's policy (``autopilot_policy.yaml`` beside this module)."""
    return (resources.files(__package__) / "autopilot_policy.yaml").read_text()


def shocked(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Situation 2: 70% of the employed aged 20-39 without a bachelor's degree lose their job."""
    schooling = pd.to_numeric(frame["SCHL"].astype(str))
    hit = frame["AGEP"].between(20, 39) & (schooling < 21) & (frame[ACS_LABEL] == 1)
    hit &= rng.random(len(frame)) < 0.7
    return frame.assign(**{ACS_LABEL: np.where(hit, 0, frame[ACS_LABEL])})


def bugged(frame: pd.DataFrame) -> pd.DataFrame:
    """Situation 3: an upstream job sends ``AGEP`` in months."""
    return frame.assign(AGEP=frame["AGEP"] * 12)


@dataclass
class Window:
    index: int
    start_ms: int
    end_ms: int
    rows: pd.DataFrame  # inputs as served (the bug included) and labels as they happened
    situation: str


def windows(data: pd.DataFrame, rows_per_window: int | None, seed: int) -> list[Window]:
    """The replay: each survey year cut into 12 random parts ("months"), one per window."""
    rng = np.random.default_rng(seed)
    found: list[Window] = []
    for y, year in enumerate(sorted(data["year"].unique())):
        rows = data[data["year"] == year]
        order = rng.permutation(len(rows))
        for month, part in enumerate(np.array_split(order, 12)):
            index = y * 12 + month
            chosen = rows.iloc[part if rows_per_window is None else part[:rows_per_window]]
            situation = f"{year}-{month + 1:02d}"
            if index >= SHOCK_WINDOW:
                chosen, situation = shocked(chosen, rng), f"{situation}, shock"
            if index == BUG_WINDOW:
                chosen, situation = bugged(chosen), f"{situation}, AGEP in months"
            start = int((START + pd.Timedelta(days=WINDOW_DAYS * index)).value // 1_000_000)
            found.append(
                Window(
                    index,
                    start,
                    start + WINDOW_DAYS * DAY_MS,
                    chosen.reset_index(drop=True),
                    situation,
                )
            )
    return found


@dataclass
class Replay:
    """What the replay measured, window by window, and what the autopilot did."""

    deployment: str = DEPLOYMENT
    accuracy: dict[str, list[float]] = field(default_factory=dict)
    windows: list[Window] = field(default_factory=list)
    decisions: list[Any] = field(default_factory=list)
    oracle_retrains: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        kinds = [d.kind for d in self.decisions]
        escalations = [d for d in self.decisions if d.kind == "escalate"]
        first_bug_escalation = next(
            (self.window_of(d.at_ms) for d in escalations if self.window_of(d.at_ms) >= BUG_WINDOW),
            None,
        )
        return {
            "deployment": self.deployment,
            "mean_accuracy": {k: float(np.mean(v)) for k, v in self.accuracy.items()},
            "retrains": kinds.count("retrain"),
            "promotions": kinds.count("promote"),
            "rollbacks": kinds.count("rollback"),
            "rejections": kinds.count("reject"),
            "escalations": len(escalations),
            "oracle_retrains": self.oracle_retrains,
            "bug_escalated_in_window": first_bug_escalation,
            "windows_to_recover": self.windows_to_recover(),
            "seconds": self.seconds,
        }

    def window_of(self, at_ms: int) -> int:
        for w in self.windows:
            if w.start_ms < at_ms <= w.end_ms:
                return w.index
        return -1

    def windows_to_recover(self) -> int | None:
        """Windows from the shock until the autopilot's accuracy is within a point of the
        oracle's for three windows in a row (the bug window and the next are left out)."""
        auto, oracle = self.accuracy["autopilot"], self.accuracy["oracle"]
        usable = [
            k for k in range(SHOCK_WINDOW, len(auto)) if k not in (BUG_WINDOW, BUG_WINDOW + 1)
        ]
        for i, k in enumerate(usable):
            run = usable[i : i + 3]
            if len(run) == 3 and all(auto[j] >= oracle[j] - 0.01 for j in run):
                return k - SHOCK_WINDOW
        return None


def _fit(frame: pd.DataFrame, max_iter: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    typed = acs_types(frame[[*ACS_FEATURES, ACS_LABEL]])
    model = HistGradientBoostingClassifier(
        max_iter=max_iter,
        categorical_features="from_dtype",
        early_stopping=False,
        random_state=2015,
    )
    return model.fit(typed[ACS_FEATURES], typed[ACS_LABEL])


def replay(
    data: pd.DataFrame,
    production: int,
    *,
    rows_per_window: int | None,
    oracle_iterations: int = 100,
    console: Console | None = None,
    seed: int = 2016,
) -> Replay:
    """Replay 2016-2018 through ``employment-prod`` (created at ``production``) under the demo
    policy; see the module docstring."""
    console = console or Console()
    started = time.perf_counter()
    model_name = lw.models.get(f"employment/{production}").name
    name = _fresh_name()
    lw.deployments.create(name, model_name, production, reason="the demo's deployment")
    autopilot.set_policy(name, policy_text())
    static = lw.models.load(f"{model_name}/{production}")
    result = Replay(accuracy={"static 2015 model": [], "autopilot": [], "oracle": []})
    result.windows = windows(data, rows_per_window, seed)
    replayer = Replayer(name, prepare=acs_types)
    oracle: Any = None
    # Switched on as the replay begins, so that each check judges one whole window.
    autopilot.run_once(name, now_ms=result.windows[0].start_ms, settings=ALLOWED)
    # One OpenMP thread: gradient boosting's threads spin against whatever else runs on a
    # small machine (tests in parallel, say) and slow both down many times over.
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    with (
        threadpool_limits(limits=1),
        console.status("Replaying 2016-2018 through employment-prod…") as status,
    ):
        for window in result.windows:
            rows = window.rows
            labels = rows[ACS_LABEL].to_numpy()
            typed = acs_types(rows[[*ACS_FEATURES, ACS_LABEL]])[ACS_FEATURES]
            times = np.linspace(window.start_ms, window.end_ms - 1, len(rows)).astype(np.int64)
            ids = [f"w{window.index}-{i}" for i in range(len(rows))]
            served = np.zeros(len(rows), dtype=np.int64)
            for part in np.array_split(np.arange(len(rows)), TICKS_PER_WINDOW):
                chunk_ids = [ids[i] for i in part]
                served[part] = replayer.serve(
                    rows.iloc[part][ACS_FEATURES], chunk_ids, times[part]
                ).astype(np.int64)
                log_outcomes(name, chunk_ids, labels[part].tolist())
                tick_ms = int(times[part[-1]]) + 1 if part[-1] < len(rows) - 1 else window.end_ms
                autopilot.run_once(name, now_ms=tick_ms, settings=ALLOWED)
            result.accuracy["autopilot"].append(float((served == labels).mean()))
            result.accuracy["static 2015 model"].append(
                float((static.predict(typed) == labels).mean())
            )
            result.accuracy["oracle"].append(
                float((oracle.predict(typed) == labels).mean())
                if oracle is not None
                else result.accuracy["static 2015 model"][-1]
            )
            oracle = _fit(rows, oracle_iterations)
            result.oracle_retrains += 1
            status.update(
                f"Replaying 2016-2018 through employment-prod… window {window.index + 1}"
                f"/{len(result.windows)}"
            )
    result.oracle_retrains -= 1  # the last one serves nothing
    result.deployment = name
    result.decisions = autopilot.history(name)
    result.seconds = time.perf_counter() - started
    return result


def _fresh_name() -> str:
    """``employment-prod``, or the first of ``employment-prod-2``, ``-3``, … not taken: each
    run of the demo replays the stream through a deployment of its own."""
    taken = {d.name for d in lw.deployments.list_deployments()}
    candidates = (DEPLOYMENT if n == 1 else f"{DEPLOYMENT}-{n}" for n in range(1, 10_000))
    return next(c for c in candidates if c not in taken)


def report_path(deployment: str) -> Path:
    uri = lw.context.current().store.uri
    folder = Path(uri) if "://" not in uri and os.path.isdir(uri) else Path.cwd()
    return folder / "reports" / f"autopilot-{deployment}.html"


def run_autopilot(
    data: pd.DataFrame, production: int, quick: bool, console: Console
) -> dict[str, Any]:
    """The act as the demo runs it: the replay, its table, the report."""
    found = replay(data, production, rows_per_window=2000 if quick else None, console=console)
    summary = found.summary()
    path = write_report(
        report_path(found.deployment),
        deployment=found.deployment,
        starts_ms=[w.start_ms for w in found.windows],
        series={LINE_NAMES.get(k, k): v for k, v in found.accuracy.items()},
        labels=[w.situation for w in found.windows],
        decisions=found.decisions,
    )
    table = Table(
        title=f"{found.deployment} under the autopilot, a window per survey month (2016-2018)"
    )
    for column in ("", "mean accuracy", "retrains", "promotions"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row(
        "static 2015 model", f"{summary['mean_accuracy']['static 2015 model']:.4f}", "0", "0"
    )
    table.add_row(
        "autopilot",
        f"{summary['mean_accuracy']['autopilot']:.4f}",
        str(summary["retrains"]),
        str(summary["promotions"]),
    )
    table.add_row(
        "retrained every window",
        f"{summary['mean_accuracy']['oracle']:.4f}",
        str(summary["oracle_retrains"]),
        str(summary["oracle_retrains"]),
    )
    console.print(table)
    for decision in autopilot.history(found.deployment):
        if decision.kind == "observe":
            continue
        month = found.windows[max(found.window_of(decision.at_ms), 0)].situation
        console.print(f"  {month} [bold]{decision.kind}[/]: {decision.summary}")
    console.print(f"Autopilot report: [bold]{path}[/]")
    return {**summary, "report": str(path)}
