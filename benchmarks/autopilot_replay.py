"""One real stream through the autopilot under the default policy, and its baselines.

The first ``warmup_windows`` train production (the stream's retraining model, fitted once);
the rest are replayed one per day of the replay clock through a deployment, four controller
ticks a window, with outcomes logged ``delay`` windows after their rows were served (a
quarter at each tick). The policy gives only ``label``, ``retrain.pipeline`` and
``monitor.window: 1D``: every other setting is the default, the same for every stream. The
baselines see the same rows with the same delay, fitted outside the store: static (never
retrained), all-history (every labelled window so far), and the oracle that retrains every
window on the most recent K labelled windows, K the best in hindsight.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

import loopwise as lw
from autopilot_retrain import MODEL_NAME, TARGET, fit_frame
from autopilot_scoring import best_window_count, labelled_until
from autopilot_streams import Stream
from loopwise import autopilot
from loopwise.autopilot.replay import Replayer
from loopwise.deployments import assign

__all__ = ["ORACLE_KS", "Setting", "StreamRun", "baselines", "replay_stream"]

DAY_MS = 86_400_000
START_MS = 1_577_836_800_000  # 2020-01-01: window w of the replay is day w
TICKS_PER_WINDOW = 4
ORACLE_KS = (1, 2, 3, 4, 6, 8, 12, 16)
DEPLOYMENT = "stream-prod"
PIPELINES = Path(__file__).resolve().parent / "autopilot_retrain.py"


@dataclass(frozen=True)
class Setting:
    """A label volume: at most ``max_rows`` rows per window (None: all), labels ``delay``
    windows late."""

    name: str
    max_rows: int | None
    delay: int


@dataclass
class StreamRun:
    """What one replay measured, per replayed window."""

    accuracy: dict[str, list[float]] = field(default_factory=dict)
    oracle_k: int = 0
    oracle_retrains: int = 0
    served: list[list[int]] = field(default_factory=list)
    registered_in: dict[int, int] = field(default_factory=dict)
    decisions: list[Any] = field(default_factory=list)
    worse_promotions: int = 0
    seconds: float = 0.0


def policy_text(kind: str) -> str:
    """The default policy: the label, the pipeline and the check window, nothing else."""
    return (
        "label: target\n"
        "monitor: {window: 1D}\n"
        f"retrain: {{pipeline: '{PIPELINES}:{kind}_retraining'}}\n"
    )


def _accuracy(model: Any, frame: pd.DataFrame) -> float:
    answers = model.predict(frame.drop(columns=[TARGET]))
    return float((answers == frame[TARGET].to_numpy()).mean())


def baselines(
    kind: str, windows: list[pd.DataFrame], warmup: int, delay: int
) -> tuple[dict[str, list[float]], int, int]:
    """Accuracy per replayed window of static, all-history and the best-K oracle; that K and
    the oracle's retrains."""
    fitted: dict[tuple[int, int], Any] = {}

    def model(first: int, last: int) -> Any:
        if (first, last) not in fitted:
            fitted[(first, last)] = fit_frame(kind, pd.concat(windows[first : last + 1]))
        return fitted[(first, last)]

    replayed = range(warmup, len(windows))
    ends = [labelled_until(w, warmup, delay) for w in replayed]
    lines = {
        "static": [_accuracy(model(0, warmup - 1), windows[w]) for w in replayed],
        "all-history": [
            _accuracy(model(0, e), windows[w]) for w, e in zip(replayed, ends, strict=True)
        ],
    }
    per_k = {
        k: [
            _accuracy(model(max(0, e - k + 1), e), windows[w])
            for w, e in zip(replayed, ends, strict=True)
        ]
        for k in sorted({*ORACLE_KS, len(windows)})  # K = every window: all-history is a K
    }
    best = best_window_count(per_k)
    lines[f"oracle (K={best})"] = per_k[best]
    retrains = sum(1 for a, b in itertools.pairwise(ends) if a != b)
    return lines, best, retrains


def _production(kind: str, warmup: pd.DataFrame) -> int:
    dataset = lw.log_dataset(warmup, name="warmup", split="train")
    with lw.start_run(name=f"{kind}-warmup") as run:
        run.use(dataset)
        model = fit_frame(kind, warmup)
        example = warmup.drop(columns=[TARGET]).head(5)
        return run.log_model(model, name=MODEL_NAME, input_example=example).version


def _serve_window(
    replayer: Replayer,
    w: int,
    rows: pd.DataFrame,
    late: tuple[list[str], list[int]] | None,
    settings: autopilot.OperatorSettings,
) -> tuple[np.ndarray[Any, Any], list[int]]:
    """Serve window ``w`` in four ticks, logging ``late`` outcomes (ids, labels) or this
    window's own; the answers and the versions that gave them."""
    start = START_MS + w * DAY_MS
    stamps = np.linspace(start, start + DAY_MS - 1, len(rows)).astype(np.int64)
    ids = [f"w{w}-{i}" for i in range(len(rows))]
    labels = rows[TARGET].astype("int64").tolist()
    outcome_ids, outcome_labels = late if late is not None else (ids, labels)
    answers = np.zeros(len(rows), dtype=np.int64)
    versions: list[int] = []
    parts = np.array_split(np.arange(len(rows)), TICKS_PER_WINDOW)
    outcome_parts = np.array_split(np.arange(len(outcome_ids)), TICKS_PER_WINDOW)
    for tick, (part, outcome_part) in enumerate(zip(parts, outcome_parts, strict=True)):
        chunk = [ids[i] for i in part]
        deployment = lw.deployments.get(replayer.deployment)
        versions.extend(assign(deployment, key) for key in chunk)
        inputs = rows.iloc[part].drop(columns=[TARGET])
        answers[part] = replayer.serve(inputs, chunk, stamps[part]).astype(np.int64)
        tick_ms = start + (tick + 1) * DAY_MS // TICKS_PER_WINDOW
        if len(outcome_part):
            lw.log_outcomes(
                replayer.deployment,
                [outcome_ids[i] for i in outcome_part],
                [outcome_labels[i] for i in outcome_part],
                timestamp_ms=tick_ms - 1,
            )
        autopilot.run_once(replayer.deployment, now_ms=tick_ms, settings=settings)
    return answers, sorted(set(versions))


def _worse_promotions(run: StreamRun, replayed: list[pd.DataFrame]) -> int:
    """Promotions whose new model scored more than half a point below the one it replaced on
    the window after the promotion."""
    worse, production = 0, 1
    for decision in run.decisions:
        if decision.kind != "promote":
            continue
        new = int(decision.state.get("production", production))
        old = int(decision.evidence.get("replaced", production))
        production = new
        w = (decision.at_ms - 1 - START_MS) // DAY_MS + 1
        if w >= len(replayed) or new == old:
            continue
        scores = {
            v: _accuracy(lw.models.load(f"{MODEL_NAME}/{v}"), replayed[w]) for v in (new, old)
        }
        worse += scores[new] < scores[old] - 0.005
    return worse


def replay_stream(
    stream: Stream, windows: list[pd.DataFrame], setting: Setting, folder: Path
) -> StreamRun:
    """Replay ``windows`` (already capped to the setting's volume) in a store of its own."""
    started = time.perf_counter()
    kind, warmup = stream.model, stream.warmup_windows
    result = StreamRun()
    with threadpool_limits(limits=1):
        lines, result.oracle_k, result.oracle_retrains = baselines(
            kind, windows, warmup, setting.delay
        )
        lw.init(project="bench", uri=folder)
        try:
            result.accuracy = {**lines, "autopilot": []}
            _run_autopilot(stream, windows, setting, result)
        finally:
            lw.shutdown()
    result.seconds = time.perf_counter() - started
    return result


def _run_autopilot(
    stream: Stream, windows: list[pd.DataFrame], setting: Setting, result: StreamRun
) -> None:
    kind, warmup = stream.model, stream.warmup_windows
    production = _production(kind, pd.concat(windows[:warmup], ignore_index=True))
    lw.deployments.create(DEPLOYMENT, MODEL_NAME, production, reason="the suite's stream")
    autopilot.set_policy(DEPLOYMENT, policy_text(kind))
    allowed = autopilot.OperatorSettings(pipelines=(f"{PIPELINES}:{kind}_retraining",))
    replayer = Replayer(DEPLOYMENT)
    autopilot.run_once(DEPLOYMENT, now_ms=START_MS, settings=allowed)
    replayed = windows[warmup:]
    result.registered_in = {production: -1}
    with Console(quiet=True).status(stream.name):
        for w, rows in enumerate(replayed):
            late = None
            if setting.delay:
                source = w - setting.delay
                earlier = replayed[source] if source >= 0 else replayed[0].iloc[:0]
                late = (
                    [f"w{source}-{i}" for i in range(len(earlier))],
                    earlier[TARGET].astype("int64").tolist(),
                )
            answers, versions = _serve_window(replayer, w, rows, late, allowed)
            result.accuracy["autopilot"].append(float((answers == rows[TARGET].to_numpy()).mean()))
            result.served.append(versions)
            for version in lw.models.versions(MODEL_NAME):
                result.registered_in.setdefault(version.version, w)
    result.decisions = autopilot.history(DEPLOYMENT)
    result.worse_promotions = _worse_promotions(result, replayed)
