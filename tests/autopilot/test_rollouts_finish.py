"""Rollouts that finish: a step is decided as soon as the evidence suffices (a sequential test
that keeps its false-alarm rate however often it looks), at the latest when its time is up,
and the promoted version's baseline includes what it scored in its last step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
import pytest

import loopwise as lw
from loopwise.autopilot.decide import decide_rollout_step
from loopwise.autopilot.decide.rollout import promoted_baseline
from loopwise.autopilot.policy import Policy, parse_policy
from loopwise.autopilot.rollout import (
    MIN_LOOK_ROWS,
    Verdict,
    boundary_z,
    step_duration_ms,
    weigh_step,
)
from loopwise.autopilot.state import Rollout, State
from loopwise.context import Context
from loopwise.store import Deployment, TrafficPlan
from loopwise.store.prediction_segments import OUTPUT_PREFIX

from .world import DAY_MS, DEPLOYMENT, START_MS, World, policy_text

HOUR_MS = 3_600_000


def _policy(**rollout: Any) -> Policy:
    settings = {"strategy": "canary", "steps": [5, 25, 100], "min_samples": 200, **rollout}
    return parse_policy(policy_text(rollout=settings), check_pipeline=False)


def _served(accuracy: float, rows: int, labelled: int | None = None, seed: int = 0) -> pd.DataFrame:
    """``rows`` answers of a classifier that is right with probability ``accuracy``; the
    first ``labelled`` of them have their outcome."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, rows)
    right = rng.random(rows) < accuracy
    outcome = pd.array(truth, dtype="Int64")
    if labelled is not None:
        outcome[labelled:] = pd.NA
    return pd.DataFrame(
        {
            OUTPUT_PREFIX + "predict": np.where(right, truth, 1 - truth),
            "outcome": outcome,
            "latency_ms": np.full(rows, 2.0),
        }
    )


def _weigh(policy: Policy, base: pd.DataFrame, cand: pd.DataFrame, hours: float) -> Verdict:
    return weigh_step(policy, "accuracy", base, cand, elapsed_ms=int(hours * HOUR_MS))


# -- the time bound ------------------------------------------------------------------------------
def test_a_step_is_bounded_in_time_two_check_windows_by_default() -> None:
    assert step_duration_ms(_policy()) == 2 * DAY_MS  # the tests' monitor.window is 1D
    assert step_duration_ms(_policy(max_step_duration="36h")) == 36 * HOUR_MS


def test_a_step_whose_time_is_up_is_decided_on_the_evidence_so_far() -> None:
    policy = _policy()
    # Low volume: 40 labelled answers each in the step, far from min_samples (200).
    base, cand = _served(0.8, 800, 40, seed=1), _served(0.8, 40, 40, seed=2)
    assert _weigh(policy, base, cand, 47).action == "wait"
    verdict = _weigh(policy, base, cand, 48)
    assert verdict.action == "advance"
    assert "ran out (2 days)" in verdict.reason and "evidence so far" in verdict.reason
    assert verdict.evidence["timed_out"] == {"elapsed_ms": 48 * HOUR_MS, "limit_ms": 2 * DAY_MS}
    # Whatever the evidence so far shows against the candidate still rolls it back.
    worse = _served(0.2, 40, 40, seed=3)
    assert _weigh(policy, base, worse, 48).action == "rollback"


# -- deciding as soon as the evidence suffices ----------------------------------------------------
def test_a_clearly_better_candidate_advances_before_min_samples() -> None:
    policy = _policy()
    verdict = _weigh(policy, _served(0.6, 150, seed=4), _served(0.95, 150, seed=5), 1)
    assert verdict.action == "advance" and "shown no worse" in verdict.reason
    assert verdict.evidence["labelled"] == {"production": 150, "candidate": 150}
    assert verdict.evidence["sequential"]["boundary_z"] == pytest.approx(
        NormalDist().inv_cdf(0.975) / np.sqrt(150 / 200)
    )


def test_a_clearly_worse_candidate_is_rolled_back_before_min_samples() -> None:
    verdict = _weigh(_policy(), _served(0.9, 80, seed=6), _served(0.4, 80, seed=7), 1)
    assert verdict.action == "rollback" and "worse beyond the margin" in verdict.reason


def test_a_candidate_like_production_waits_for_more_evidence() -> None:
    verdict = _weigh(_policy(), _served(0.8, 100, seed=8), _served(0.8, 100, seed=9), 1)
    assert verdict.action == "wait" and verdict.reason.startswith("100 of 200")
    # Too few labels to test anything: no metric at all.
    few = MIN_LOOK_ROWS - 1
    verdict = _weigh(_policy(), _served(0.9, few, seed=10), _served(0.1, few, seed=11), 1)
    assert verdict.action == "wait" and "metric" not in verdict.evidence


def test_looking_at_every_tick_keeps_the_false_alarm_rate() -> None:
    """Candidates exactly as good as production, judged every 17 labelled rows from 30 to
    200: the sequential boundary rolls back at most about alpha of them; the fixed test
    applied at every look would roll back several times as many."""
    policy = _policy()
    trials, rolled_back, naive = 300, 0, 0
    alpha = policy.rollout.alpha
    naive_z = NormalDist().inv_cdf(1 - alpha)
    for trial in range(trials):
        base = _served(0.75, 200, seed=2 * trial + 100)
        cand = _served(0.75, 200, seed=2 * trial + 101)
        decided = crossed = False
        for rows in range(30, 201, 17):
            verdict = _weigh(policy, base.iloc[:rows], cand.iloc[:rows], 1)
            if not decided and verdict.action != "wait":
                decided, rolled_back = True, rolled_back + (verdict.action == "rollback")
            z = verdict.evidence["metric"]["z"]
            crossed = crossed or (z is not None and z >= naive_z)
        naive += crossed
    assert rolled_back / trials <= alpha + 0.02
    assert naive > 2 * rolled_back


def test_the_boundary_is_strictest_early() -> None:
    z = NormalDist().inv_cdf(0.975)
    assert boundary_z(0.05, 200, 200) == pytest.approx(z)
    assert boundary_z(0.05, 400, 200) == pytest.approx(z)
    assert boundary_z(0.05, 50, 200) == pytest.approx(2 * z)


# -- the promoted version's baseline ---------------------------------------------------------------
def test_the_baseline_of_a_promotion_pools_the_gate_and_the_last_step() -> None:
    rollout = Rollout(2, 1, START_MS, gate_metric=0.93, gate_rows=120)
    live = Verdict("advance", "x", {"metric": {"candidate": 0.81}, "labelled": {"candidate": 120}})
    value, rows = promoted_baseline(rollout, live, "accuracy")
    assert value == pytest.approx(0.87) and rows == 240
    assert promoted_baseline(rollout, live, "rmse")[0] == pytest.approx(
        np.sqrt((0.93**2 + 0.81**2) / 2)
    )
    # Without labelled rows in the step, the gate's figure stands.
    assert promoted_baseline(rollout, Verdict("advance", "x"), "accuracy") == (0.93, 120)


def test_a_promotion_after_a_long_wait_is_not_judged_by_its_stale_gate_figure() -> None:
    policy = _policy(steps=[20, 100], min_samples=60)
    rollout = Rollout(2, 0, START_MS, gate_metric=0.93, gate_rows=100)
    state = State(phase="rollout", production=1, metric="accuracy", baseline=0.9,
                  baseline_rows=600, rollout=rollout)  # fmt: skip
    deployed = Deployment("p", DEPLOYMENT, "synthetic", TrafficPlan({1: 80, 2: 20}), 2, 0, 0)
    verdict = Verdict(
        "advance", "no guardrail breached",
        {"metric": {"candidate": 0.73}, "labelled": {"production": 300, "candidate": 300}},
    )  # fmt: skip
    (promoted,) = decide_rollout_step(policy, state, verdict, deployed=deployed, now_ms=START_MS)
    assert promoted.kind == "promote"
    assert promoted.state.baseline == pytest.approx(0.78) and promoted.state.baseline_rows == 400
    assert promoted.evidence["baseline"]["gate"] == 0.93


# -- through the controller ------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> Iterator[Context]:
    context = lw.init(project="finish", uri=tmp_path / "store")
    yield context
    lw.shutdown()


@pytest.mark.slow(seconds=8)  # the whole loop over many windows
def test_the_default_canary_finishes_at_low_volume(store: Context) -> None:
    """5% of 600 answers a window is 30 for the candidate: min_samples (200) would take seven
    windows per step; the time bound (two windows) promotes it within a few."""
    world = World(change=3)
    world.setup(policy_text(rollout={"strategy": "canary", "steps": [5, 100], "min_samples": 200}))
    world.play(range(0, 8))
    kinds = world.kinds()
    assert kinds.count("rollout") == 1 and kinds.count("promote") == 1
    history = lw.autopilot.history(DEPLOYMENT)
    started = next(d for d in history if d.kind == "rollout")
    promoted = next(d for d in history if d.kind == "promote")
    assert promoted.at_ms - started.at_ms <= 2 * DAY_MS + DAY_MS // 4
    assert lw.deployments.get(DEPLOYMENT).plan.shares == {2: 100}
    assert world.served[7] > world.served[3] + 0.1
    assert promoted.at_ms < START_MS + 8 * DAY_MS
