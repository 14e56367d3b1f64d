"""The autopilot's checks on the drift it meets on real streams: a refresh that fails, transient
dips far apart, the first check after a promotion, slow decay, and labels that come late. Pure
decisions on plain values (``decide``), as the controller takes them tick after tick."""

from __future__ import annotations

from typing import Any

from loopwise.autopilot.decide import (
    Decision,
    RetrainRequest,
    assess_check,
    check_start_ms,
    decide_check,
    decide_gates,
    decide_retrain,
    decide_rollout_start,
)
from loopwise.autopilot.observe import Observation
from loopwise.autopilot.policy import Policy, parse_policy
from loopwise.autopilot.retraining import GateResult, TrainingData
from loopwise.autopilot.state import PendingRetrain, State
from loopwise.store import DatasetVersion, Deployment, TrafficPlan

from .world import DAY_MS, START_MS, policy_text

NOW = START_MS + 10 * DAY_MS


def _policy(**overrides: Any) -> Policy:
    return parse_policy(policy_text(**overrides), check_pipeline=False)


def _watching(**changes: Any) -> State:
    state = State(production=1, metric="accuracy", baseline=0.9, baseline_rows=2000,
                  baseline_source="version 1 when promoted", last_check_ms=NOW - DAY_MS,
                  expect={"plan": TrafficPlan({1: 100}).to_json(), "revision": 1})  # fmt: skip
    for key, value in changes.items():
        setattr(state, key, value)
    return state


def _seen(
    realised: float | None, labelled: int = 600, se: float = 0.01, **more: Any
) -> Observation:
    return Observation(NOW - DAY_MS, NOW, 600, labelled, realised, se, None, **more)


def _check(state: State, seen: Observation, now_ms: int = NOW, **facts: Any) -> Any:
    """One check at ``now_ms``: the decision (or retrain request) it leads to."""
    policy = facts.pop("policy", _policy())
    judged = assess_check(policy, state, seen, metric="accuracy", start_ms=now_ms - DAY_MS,
                          now_ms=now_ms)  # fmt: skip
    return decide_check(policy, judged, now_ms=now_ms, **facts)


def _data(version: int) -> TrainingData:
    def dataset(name: str) -> DatasetVersion:
        return DatasetVersion(1, "p", name, version, "h", "d", 10, {}, 0)

    return TrainingData(dataset("t"), dataset("h"), NOW - DAY_MS, NOW, 2000)


def _failed_gates() -> GateResult:
    return GateResult(False, 0.85, 0.9, 400, {"prediction_shift": 0.1}, ["not better"])


# -- 1: a refresh that ends without a promotion leaves no trace of its regime ----------------
def test_a_drop_after_a_rejected_refresh_estimates_its_change_point_afresh() -> None:
    policy = _policy()
    regime_start = NOW - 8 * DAY_MS
    state = _watching(regime_start_ms=regime_start, regime_rows=500)
    refresh = _check(state, _seen(0.9), rows_since_change=3000, policy=policy)
    assert isinstance(refresh, RetrainRequest) and refresh.refresh
    assert refresh.state.drop_since_ms == regime_start  # the refresh trains since the change
    retrain = decide_retrain(policy, refresh, _data(1), now_ms=NOW)
    assert retrain is not None and retrain.kind == "retrain"
    assert retrain.state.pending_retrain is not None
    assert retrain.state.pending_retrain.since_ms == regime_start
    rejected = decide_gates(policy, retrain.state, 2, "run", _failed_gates())
    assert rejected is not None and rejected.kind == "reject"
    assert rejected.state.drop_since_ms is None
    # A new drop after it: its own change point, not the rejected refresh's regime.
    later = NOW + 2 * DAY_MS
    rejected.state.retrains_ms = []
    request = _check(rejected.state, _seen(0.6), now_ms=later, change_start_ms=later - 3600_000)
    assert isinstance(request, RetrainRequest) and not request.refresh
    assert request.state.drop_since_ms == later - 3600_000
    assert request.evidence["change_point_ms"] == later - 3600_000


def test_a_refresh_that_cannot_start_leaves_no_drop_behind() -> None:
    policy = _policy()
    state = _watching(regime_start_ms=NOW - 8 * DAY_MS, regime_rows=500)
    refresh = _check(state, _seen(0.9), rows_since_change=3000, policy=policy)
    assert isinstance(refresh, RetrainRequest)
    held = decide_retrain(policy, refresh, None, now_ms=NOW)
    assert isinstance(held, Decision) and held.kind == "observe"
    assert held.state.drop_since_ms is None and not held.state.awaiting_rows


# -- 6: failed candidates count within one episode of trouble --------------------------------
def test_a_healthy_check_ends_the_episode_and_its_count_of_failed_candidates() -> None:
    policy = _policy()
    failed_once = _watching(failed_candidates=1)
    unmeasured = _check(failed_once, _seen(None, labelled=20), policy=policy)
    assert isinstance(unmeasured, Decision) and unmeasured.state.failed_candidates == 1
    healthy = _check(failed_once, _seen(0.9), policy=policy)
    assert isinstance(healthy, Decision) and healthy.kind == "observe"
    assert healthy.state.failed_candidates == 0
    # A transient dip much later: its rejected candidate is the first of a new episode.
    later = NOW + 7 * DAY_MS
    dip = _check(healthy.state, _seen(0.6), now_ms=later, change_start_ms=later - 1000)
    assert isinstance(dip, RetrainRequest)
    retrain = decide_retrain(policy, dip, _data(2), now_ms=later)
    assert retrain is not None
    rejected = decide_gates(policy, retrain.state, 3, "run", _failed_gates())
    assert rejected is not None and rejected.kind == "reject"
    assert rejected.state.failed_candidates == 1 and rejected.state.phase == "watching"


# -- 3: the first check after a promotion judges the new version alone -----------------------
def _promoted(policy: Policy) -> State:
    """Version 2 promoted at NOW (blue-green: at once after its gates, 0.93 on 400 rows)."""
    pending = _watching(pending_retrain=PendingRetrain("t/1", "h/1", NOW - DAY_MS, 2000))
    passed = GateResult(True, 0.93, 0.6, 400, {"prediction_shift": 0.1}, [])
    deployed = Deployment("p", "synth-prod", "synthetic", TrafficPlan({1: 100}), 1, 0, 0)
    promoted = decide_rollout_start(policy, pending, 2, "run", passed, deployed=deployed,
                                    counts_at_start=None, now_ms=NOW)  # fmt: skip
    assert promoted.kind == "promote"
    return promoted.state


def test_the_first_check_after_a_promotion_starts_at_it_and_waits_for_labels() -> None:
    policy = _policy(rollout={"strategy": "blue-green"})
    state = _promoted(policy)
    assert state.production == 2 and state.baseline == 0.93 and state.last_check_ms == NOW
    assert check_start_ms(policy, state, NOW + DAY_MS // 2) is None  # not a whole window yet
    assert check_start_ms(policy, state, NOW + DAY_MS) == NOW
    # A day on, few of version 2's answers have labels yet: not measurable, whatever the
    # estimate says (estimated accuracy misses concept drift), so no retrain and no refresh.
    later = NOW + DAY_MS
    for estimated in (0.5, 0.99):
        seen = Observation(NOW, later, 600, 40, None, None, estimated)
        waiting = _check(state, seen, now_ms=later, policy=policy, rows_since_change=40)
        assert isinstance(waiting, Decision) and waiting.kind == "observe"
        assert waiting.evidence["drop"]["triggered"] is False
        assert "not measurable yet" in waiting.summary
        assert "40 labelled rows of version 2" in waiting.summary
    # Once it has been judged on labels, an estimate may stand in when labels stop.
    judged = _check(state, _seen(0.93), now_ms=later, policy=policy, rows_since_change=600)
    assert isinstance(judged, Decision) and judged.state.realised_checks == 1
    blind = Observation(later, later + DAY_MS, 600, 0, None, None, 0.5)
    estimated = _check(judged.state, blind, now_ms=later + DAY_MS, policy=policy,
                       change_start_ms=later)  # fmt: skip
    assert isinstance(estimated, RetrainRequest)
    assert estimated.evidence["drop"]["source"] == "estimated"
