"""The autopilot's decisions on plain values: no store, no traffic, no pipeline. Each
``decide_*`` function takes the facts a tick gathered and returns the decision to record, the
state it leaves and the actions that follow; the controller tests drive the same functions
through the store."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from loopwise.autopilot.decide import (
    ChangePlan,
    Decision,
    FinishRetrain,
    MoveAlias,
    RaiseAlert,
    RetrainRequest,
    assess_check,
    check_start_ms,
    decide_check,
    decide_gates,
    decide_pipeline_failed,
    decide_pipeline_refused,
    decide_reconcile,
    decide_retrain,
    decide_rollout_start,
    decide_rollout_step,
    next_step,
    refresh_due,
    retrain_blocked,
)
from loopwise.autopilot.observe import Observation
from loopwise.autopilot.policy import Policy, parse_policy
from loopwise.autopilot.retraining import GateResult, TrainingData
from loopwise.autopilot.rollout import Verdict
from loopwise.autopilot.state import PendingRetrain, Rollout, State
from loopwise.store import DatasetVersion, Deployment, TrafficPlan

from .world import DAY_MS, START_MS, policy_text

NOW = START_MS + 3 * DAY_MS


def _policy(**overrides: Any) -> Policy:
    return parse_policy(policy_text(**overrides), check_pipeline=False)


def _deployed(plan: TrafficPlan, revision: int = 1) -> Deployment:
    return Deployment("p", "synth-prod", "synthetic", plan, revision, 0, 0)


def _watching(**changes: Any) -> State:
    state = State(production=1, metric="accuracy", baseline=0.9, baseline_rows=600,
                  baseline_source="the first check with enough labels",
                  last_check_ms=NOW - DAY_MS,
                  expect={"plan": TrafficPlan({1: 100}).to_json(), "revision": 1})  # fmt: skip
    for key, value in changes.items():
        setattr(state, key, value)
    return state


def _seen(realised: float | None, labelled: int = 600, **more: Any) -> Observation:
    return Observation(NOW - DAY_MS, NOW, 600, labelled, realised, 0.01, None, **more)


def _dataset(name: str, version: int) -> DatasetVersion:
    return DatasetVersion(1, "p", name, version, "h", "d", 10, {}, 0)


def _gates(passed: bool = True, **checks: Any) -> GateResult:
    found = {"prediction_shift": 0.25, **checks}
    failed = [] if passed else ["not better than production on the holdout (0.8 vs 0.9)"]
    return GateResult(passed, 0.93, 0.6, 120, found, failed)


# -- the start of a tick ---------------------------------------------------------------------
def test_the_first_tick_starts_from_one_version_and_not_from_a_split() -> None:
    start = decide_reconcile(State(), _deployed(TrafficPlan({1: 100}), 3), None, NOW)
    assert start.proceed and start.actions == () and start.decision is not None
    assert start.decision.kind == "start"
    assert start.decision.summary == (
        "Watching synth-prod: version 1 takes all traffic (revision 3)."
    )
    assert start.decision.state.production == 1 and start.decision.state.last_check_ms == NOW
    assert start.decision.state.expect == {"plan": TrafficPlan({1: 100}).to_json(), "revision": 3}
    split = decide_reconcile(State(), _deployed(TrafficPlan({1: 50, 2: 50})), None, NOW)
    assert not split.proceed and split.decision is not None
    assert split.decision.kind == "hold" and split.decision.state.phase == "paused"


def test_an_announced_plan_is_finished_and_an_escalation_alerted_first() -> None:
    announced = _watching(
        expect={"plan": TrafficPlan({1: 80, 2: 20}).to_json(), "revision": 2}, alias=None
    )
    resumed = decide_reconcile(announced, _deployed(TrafficPlan({1: 100}), 1), "escalate", NOW)
    assert resumed.decision is None and not resumed.proceed
    assert resumed.actions == (RaiseAlert(), ChangePlan(TrafficPlan({1: 80, 2: 20}), 1))
    settled = decide_reconcile(_watching(alias=1), _deployed(TrafficPlan({1: 100})), "observe", NOW)
    assert settled.proceed and settled.actions == (MoveAlias(),)


def test_a_plan_changed_by_a_person_is_adopted_or_pauses() -> None:
    rolling = _watching(phase="rollout", rollout=Rollout(2, 0, NOW, 0.9))
    adopted = decide_reconcile(rolling, _deployed(TrafficPlan({2: 100}), 4), "rollout", NOW)
    assert adopted.decision is not None and adopted.decision.kind == "adopt"
    assert adopted.decision.state.production == 2 and adopted.decision.state.rollout is None
    assert adopted.decision.state.baseline is None
    split = decide_reconcile(rolling, _deployed(TrafficPlan({1: 50, 2: 50}), 4), "rollout", NOW)
    assert split.decision is not None and split.decision.kind == "hold"
    assert split.decision.state.phase == "paused"
    assert rolling.rollout is not None and rolling.phase == "rollout"  # the input is left alone


def test_checks_keep_their_cadence() -> None:
    policy = _policy()
    assert check_start_ms(policy, _watching(last_check_ms=NOW - DAY_MS + 1), NOW) is None
    assert check_start_ms(policy, _watching(), NOW) == NOW - DAY_MS
    late = assess_check(policy, _watching(), _seen(0.9), metric="accuracy",
                        start_ms=NOW - DAY_MS, now_ms=NOW + DAY_MS // 2)  # fmt: skip
    assert late.state.last_check_ms == NOW


# -- checking production ---------------------------------------------------------------------
def _check(policy: Policy, state: State, seen: Observation, **facts: Any) -> Any:
    judged = assess_check(policy, state, seen, metric="accuracy", start_ms=NOW - DAY_MS, now_ms=NOW)
    return judged, decide_check(policy, judged, now_ms=NOW, **facts)


def test_a_healthy_window_is_observed_and_folded_into_the_baseline() -> None:
    judged, decision = _check(_policy(), _watching(), _seen(0.92))
    assert not judged.triggered
    assert isinstance(decision, Decision) and decision.kind == "observe"
    assert decision.summary.endswith(": no action.")
    assert decision.state.baseline == pytest.approx(0.91) and decision.state.baseline_rows == 1200
    assert decision.evidence["drop"]["triggered"] is False


def test_a_drop_asks_for_a_retrain_from_where_it_began() -> None:
    judged, request = _check(_policy(), _watching(), _seen(0.5), change_start_ms=NOW - 100)
    assert judged.triggered and isinstance(request, RetrainRequest)
    assert request.state.drop_since_ms == NOW - 100
    assert request.evidence["change_point_ms"] == NOW - 100
    assert request.why.startswith("realised accuracy 0.5000 against a baseline of 0.9000")
    _, held = _check(_policy(), _watching(phase="paused", paused_reason="r"), _seen(0.5),
                     change_start_ms=NOW - 100)  # fmt: skip
    assert isinstance(held, Decision) and held.kind == "hold" and "paused (r)" in held.summary
    recent = _watching(retrains_ms=[NOW - 1000])
    assert retrain_blocked(_policy(), recent, NOW).endswith("(retrain.cooldown)")
    _, cooling = _check(_policy(), recent, _seen(0.5), change_start_ms=NOW - 100)
    assert isinstance(cooling, Decision) and cooling.kind == "hold"
    assert cooling.summary.endswith("ago (retrain.cooldown).")


def test_broken_inputs_are_quarantined_and_escalated() -> None:
    seen = _seen(0.9, invalid=["x1"], findings=["x1: range"], skewed=["x1"])
    judged, decision = _check(_policy(), _watching(), seen)
    assert judged.decision is decision and isinstance(decision, Decision)
    assert decision.kind == "escalate" and decision.actions == (RaiseAlert(),)
    assert decision.evidence["problem"] == "invalid-inputs:x1"
    assert decision.state.quarantine == [[NOW - DAY_MS, NOW]]
    assert decision.state.phase == "watching"  # escalated, not paused


def test_a_refresh_is_due_once_the_rows_since_the_change_have_grown() -> None:
    policy = _policy()
    state = _watching(regime_start_ms=NOW - 2 * DAY_MS, regime_rows=500)
    assert refresh_due(policy, state, NOW)
    _, few = _check(policy, state, _seen(0.92), rows_since_change=1000)
    assert isinstance(few, Decision) and few.kind == "observe"
    _, request = _check(policy, state, _seen(0.92), rows_since_change=1500)
    assert isinstance(request, RetrainRequest) and request.refresh
    assert request.state.drop_since_ms == NOW - 2 * DAY_MS
    assert request.state.regime_start_ms is None  # one refresh per change
    assert "3.0 times what version 1 learnt from" in request.why


# -- retraining and gating -------------------------------------------------------------------
def test_a_retrain_waits_for_rows_is_refused_on_broken_data_or_starts() -> None:
    policy = _policy()
    request = RetrainRequest("why", _watching(drop_since_ms=NOW - 100), {"drop": {}})
    held = decide_retrain(policy, request, None, now_ms=NOW)
    assert held is not None and held.kind == "hold" and held.state.awaiting_rows
    assert "fewer than 300 labelled rows" in held.summary
    assert decide_retrain(policy, request, None, now_ms=NOW, quiet=True) is None
    broken = TrainingData(None, None, NOW - 100, NOW, 400, ["x1: range"])
    refused = decide_retrain(policy, request, broken, now_ms=NOW)
    assert refused is not None and refused.kind == "escalate"
    assert refused.state.failed_candidates == 1 and refused.evidence["invalid"] == ["x1: range"]
    data = TrainingData(_dataset("t", 1), _dataset("h", 1), NOW - 100, NOW, 400)
    started = decide_retrain(policy, request, data, now_ms=NOW)
    assert started is not None and started.kind == "retrain"
    assert started.actions == (FinishRetrain(),)
    assert started.state.pending_retrain == PendingRetrain("t/1", "h/1", NOW - 100, 400, False)
    assert started.state.retrains_ms == [NOW]
    assert started.evidence["data"] == {"rows": 400, "start_ms": NOW - 100, "end_ms": NOW,
                                        "train": "t/1", "holdout": "h/1"}  # fmt: skip
    assert request.state.pending_retrain is None and request.evidence == {"drop": {}}


def test_a_refused_or_failed_pipeline_is_escalated() -> None:
    request = RetrainRequest("why", _watching(), {})
    refused = decide_pipeline_refused(request, "not allowed")
    assert refused.summary == "why; not retrained: not allowed"
    assert refused.evidence == {"problem": "pipeline-not-allowed"}
    pending = _watching(pending_retrain=PendingRetrain("t/1", "h/1"), failed_candidates=1)
    failed = decide_pipeline_failed(_policy(), pending, "boom", {"code": "x"})
    assert failed.state.pending_retrain is None and failed.state.phase == "paused"
    assert failed.evidence == {"error": {"code": "x"}, "problem": ""}


def test_the_gates_reject_escalate_or_let_a_candidate_through() -> None:
    policy = _policy()
    pending = _watching(pending_retrain=PendingRetrain("t/1", "h/1", NOW - 100, 400))
    assert decide_gates(policy, pending, 2, "run", _gates()) is None
    rejected = decide_gates(policy, pending, 2, "run", _gates(passed=False))
    assert rejected is not None and rejected.kind == "reject"
    assert rejected.summary.endswith(" Production stays.")
    assert rejected.state.failed_candidates == 1 and rejected.state.pending_retrain is None
    again = copy.deepcopy(pending)
    again.failed_candidates = 1
    paused = decide_gates(policy, again, 2, "run", _gates(passed=False))
    assert paused is not None and paused.kind == "escalate" and paused.state.phase == "paused"
    refresh = _watching(pending_retrain=PendingRetrain("t/1", "h/1", refresh=True))
    kept = decide_gates(policy, refresh, 2, "run", _gates(passed=False))
    assert kept is not None and kept.kind == "reject" and kept.state.failed_candidates == 0
    low = _gates(minimum={"value": 0.5, "minimum": 0.7, "met": False})
    floor = decide_gates(policy, pending, 2, "run", low)
    assert floor is not None and floor.kind == "escalate" and floor.state.phase == "paused"


def test_a_candidate_through_its_gates_starts_its_rollout_or_is_promoted() -> None:
    pending = _watching(pending_retrain=PendingRetrain("t/1", "h/1", NOW - 100, 400))
    deployed = _deployed(TrafficPlan({1: 100}), 1)
    counts = {"1": [0, 10]}
    started = decide_rollout_start(_policy(), pending, 2, "run", _gates(), deployed=deployed,
                                   counts_at_start=counts, now_ms=NOW)  # fmt: skip
    assert started.kind == "rollout" and started.state.phase == "rollout"
    assert started.actions == (ChangePlan(TrafficPlan({1: 80, 2: 20}), 1),)
    assert started.state.expect == {"plan": TrafficPlan({1: 80, 2: 20}).to_json(), "revision": 2}
    assert started.state.rollout == Rollout(2, 0, NOW, 0.93, 120, 0.25, counts, NOW - 100, 400)
    assert started.summary == (
        "Version 2 passed its gates (accuracy 0.9300 vs production's 0.6000 on the held-out "
        "latest traffic): canary step 1, plan 1=80,2=20."
    )
    blue_green = _policy(rollout={"strategy": "blue-green"})
    promoted = decide_rollout_start(blue_green, pending, 2, "run", _gates(), deployed=deployed,
                                    counts_at_start=None, now_ms=NOW)  # fmt: skip
    assert promoted.kind == "promote" and promoted.state.production == 2
    assert promoted.state.regime_start_ms == NOW - 100 and promoted.state.regime_rows == 400
    assert promoted.evidence["replaced"] == 1 and promoted.state.alias == 2


# -- rollouts --------------------------------------------------------------------------------
def _rolling(step: int = 0, failed: int = 0) -> State:
    return _watching(phase="rollout", failed_candidates=failed,
                     rollout=Rollout(2, step, NOW - 100, 0.93, 120, 0.25, None, NOW - 900, 400))  # fmt: skip


def test_a_rollout_waits_advances_and_is_promoted_after_its_last_step() -> None:
    policy = _policy(rollout={"steps": [10, 50, 100], "min_samples": 60})
    deployed = _deployed(TrafficPlan({1: 90, 2: 10}), 2)
    wait = Verdict("wait", "10 of 60 labelled predictions per version so far")
    assert decide_rollout_step(policy, _rolling(), wait, deployed=deployed, now_ms=NOW) == []
    advance = Verdict("advance", "no guardrail breached", {"rows": {}})
    assert next_step(policy, Rollout(2, 0, 0, 0.9), advance) == 1
    (stepped,) = decide_rollout_step(policy, _rolling(), advance, deployed=deployed,
                                     now_ms=NOW, counts_now={"2": [0, 5]})  # fmt: skip
    assert stepped.kind == "rollout" and stepped.state.rollout is not None
    assert stepped.state.rollout.step == 1 and stepped.state.rollout.started_ms == NOW
    assert stepped.state.rollout.counts_at_start == {"2": [0, 5]}
    assert stepped.summary == ("Version 2 held up (no guardrail breached): step 2, plan 1=50,2=50.")
    assert next_step(policy, Rollout(2, 1, 0, 0.9), advance) is None
    (promoted,) = decide_rollout_step(policy, _rolling(step=1), advance, deployed=deployed,
                                      now_ms=NOW)  # fmt: skip
    assert promoted.kind == "promote" and promoted.state.phase == "watching"
    assert promoted.state.baseline == 0.93 and promoted.state.baseline_rows == 120
    assert promoted.summary.startswith("Version 2 held up at step 2 (no guardrail breached)")
    assert promoted.evidence == {"candidate": 2, "step": 1, "rows": {}, "replaced": 1}


def test_a_rollback_pauses_after_too_many_failed_candidates() -> None:
    policy = _policy()
    deployed = _deployed(TrafficPlan({1: 80, 2: 20}), 2)
    breach = Verdict("rollback", "p99 latency 90.0 ms over 50 ms")
    (rolled_back,) = decide_rollout_step(policy, _rolling(), breach, deployed=deployed, now_ms=NOW)
    assert rolled_back.kind == "rollback" and rolled_back.state.rollout is None
    assert rolled_back.actions == (ChangePlan(TrafficPlan({1: 100}), 2),)
    assert rolled_back.state.expect == {"plan": TrafficPlan({1: 100}).to_json(), "revision": 3}
    again, paused = decide_rollout_step(policy, _rolling(failed=1), breach, deployed=deployed,
                                        now_ms=NOW)  # fmt: skip
    assert again.kind == "rollback" and again.state.phase == "watching"
    assert paused.kind == "escalate" and paused.state.phase == "paused"
    assert paused.state.expect == again.state.expect
    assert paused.summary == "2 candidates in a row failed; paused."
