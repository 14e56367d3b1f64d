"""The autopilot's checks on the drift it meets on real streams: a refresh that fails, transient
dips far apart, the first check after a promotion, slow decay, and labels that come late. Pure
decisions on plain values (``decide``), as the controller takes them tick after tick."""

from __future__ import annotations

from typing import Any

import numpy as np

from loopwise.autopilot.decide import (
    Decision,
    RetrainRequest,
    assess_check,
    check_start_ms,
    decide_check,
    decide_gates,
    decide_retrain,
    decide_rollout_start,
    labelled_since_ms,
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


# -- 4: a baseline anchored to what the model achieved; evidence carried across checks -------
def _checks(state: State, values: list[float], **facts: Any) -> list[Any]:
    """Checks one window apart, each on 600 labelled rows (standard error 0.012)."""
    outcomes = []
    for i, value in enumerate(values):
        now = NOW + i * DAY_MS
        state.last_check_ms = now - DAY_MS
        outcome = _check(state, _seen(value, se=0.012), now_ms=now,
                         change_start_ms=now - DAY_MS // 2, **facts)  # fmt: skip
        outcomes.append(outcome)
        state = outcome.state
    return outcomes


def test_slow_decay_is_not_absorbed_into_the_baseline_and_adds_up_to_a_drop() -> None:
    decay = _checks(_watching(baseline_rows=5000), [0.87, 0.868, 0.866])
    first, second, third = decay
    assert isinstance(first, Decision) and first.kind == "observe"
    assert first.state.baseline == 0.9  # a settled baseline is not a running mean
    assert first.evidence["drop"]["p_value"] > 0.1  # one check alone says little
    assert isinstance(second, Decision) and second.state.baseline == 0.9
    assert isinstance(third, RetrainRequest)  # three checks together show the drop
    pooled = third.evidence["drop"]["pooled"]
    assert pooled["checks"] == 3 and pooled["rows"] == 1800
    assert third.evidence["drop"]["p_value"] < 0.05
    assert "over the last 3 checks (1,800 labelled rows)" in third.why


def test_a_marginal_check_does_not_forget_the_drop_seen_the_check_before() -> None:
    dropped, marginal = _checks(_watching(baseline_rows=5000), [0.84, 0.8626])
    assert isinstance(dropped, RetrainRequest)
    alone = _check(_watching(baseline_rows=5000), _seen(0.8626, se=0.012))
    assert 0.05 < alone.evidence["drop"]["p_value"] < 0.08  # on its own: p = 0.063
    assert isinstance(marginal, RetrainRequest)  # with the check before: still a drop
    assert marginal.state.drop_since_ms == dropped.state.drop_since_ms


def test_a_check_within_the_allowed_drop_clears_the_evidence() -> None:
    dip, recovered, after = _checks(_watching(baseline_rows=5000), [0.875, 0.9, 0.875])
    assert isinstance(dip, Decision) and len(dip.state.drop_evidence) == 1
    assert isinstance(recovered, Decision) and recovered.state.drop_evidence == []
    assert isinstance(after, Decision) and after.evidence["drop"]["pooled"]["checks"] == 1


def test_the_baseline_settles_on_a_versions_first_labelled_rows_and_then_holds() -> None:
    state = _watching(baseline=0.93, baseline_rows=400)  # the gate's figure, on 400 rows
    settling, settled, held = _checks(state, [0.92, 0.925, 0.95])
    assert isinstance(settling, Decision) and settling.state.baseline_rows == 1000
    assert settling.state.baseline == (0.93 * 400 + 0.92 * 600) / 1000
    assert isinstance(settled, Decision) and settled.state.baseline == settling.state.baseline
    assert isinstance(held, Decision) and held.state.baseline == settling.state.baseline


def test_with_no_drop_a_check_alarms_at_most_at_the_stated_rate() -> None:
    """In control (production as good as its baseline), the checks' false alarms stay under
    ``monitor.alpha`` per check, although each pools up to ``DROP_CHECKS`` checks."""
    rng = np.random.default_rng(18)
    policy = _policy(monitor={"window": "1D", "min_labelled": 150, "max_drop": 0.02})
    alarms = checks = 0
    for _ in range(40):
        state = _watching(baseline=0.75, baseline_rows=1000)
        for i in range(50):
            errors = rng.random(365) < 0.25
            value = 1 - float(errors.mean())
            se = float(errors.std(ddof=1)) / np.sqrt(365)
            now = NOW + i * DAY_MS
            state.last_check_ms = now - DAY_MS
            judged = assess_check(policy, state, _seen(value, 365, se), metric="accuracy",
                                  start_ms=now - DAY_MS, now_ms=now)  # fmt: skip
            alarms += judged.triggered
            checks += 1
            state = judged.state
            state.drop_evidence = [] if judged.triggered else state.drop_evidence
    assert alarms / checks < 0.05


def test_a_refresh_waits_for_production_to_be_judged_healthy_on_labels() -> None:
    state = _watching(regime_start_ms=NOW - 3 * DAY_MS, regime_rows=500)
    unmeasured = _check(state, _seen(None, labelled=100), rows_since_change=3000)
    assert isinstance(unmeasured, Decision) and unmeasured.kind == "observe"
    assert unmeasured.state.regime_start_ms == NOW - 3 * DAY_MS  # still due, once measured
    refresh = _check(state, _seen(0.9), rows_since_change=3000)
    assert isinstance(refresh, RetrainRequest) and refresh.refresh


# -- 7: labels that come late are judged when they come --------------------------------------
def test_a_check_judges_the_labelled_rows_served_since_those_judged_before() -> None:
    policy = _policy()
    start = _watching(judged_until_ms=None)
    assert labelled_since_ms(policy, start, NOW - DAY_MS, NOW) == NOW - DAY_MS
    # No labels yet for the window served: its rows wait for them.
    waiting = _check(start, Observation(NOW - DAY_MS, NOW, 600, 0, None, None, None,
                                        labelled_from_ms=NOW - DAY_MS))  # fmt: skip
    assert waiting.state.judged_until_ms == NOW - DAY_MS
    later = NOW + DAY_MS
    assert labelled_since_ms(policy, waiting.state, NOW, later) == NOW - DAY_MS
    # A window on, they have come: judged, and the next check starts after the last of them.
    seen = Observation(NOW, later, 600, 590, 0.9, 0.01, None, labelled_from_ms=NOW - DAY_MS,
                       labelled_until_ms=NOW - 5)  # fmt: skip
    judged = _check(waiting.state, seen, now_ms=later)
    assert judged.state.judged_until_ms == NOW - 5
    assert judged.evidence["check"]["labelled_until_ms"] == NOW - 5
    # Labels that never come are not waited for beyond LABELS_LOOKBACK_CHECKS windows.
    much_later = NOW + 30 * DAY_MS
    assert labelled_since_ms(policy, judged.state, NOW, much_later) == much_later - 4 * DAY_MS


def test_inputs_that_could_not_be_checked_are_said_in_every_summary() -> None:
    """A version without training data: the metric is still judged, and each decision says
    that drift, skew and validation were not (the lineage hole of issue 18)."""
    why = "version 2 names no training dataset"
    healthy = _check(_watching(), _seen(0.9, unchecked=why))
    dropped = _check(_watching(), _seen(0.5, unchecked=why), change_start_ms=NOW - DAY_MS)
    assert isinstance(healthy, Decision) and why in healthy.summary
    assert "not checked" in healthy.summary.lower()
    assert why in dropped.why if isinstance(dropped, RetrainRequest) else why in dropped.summary
