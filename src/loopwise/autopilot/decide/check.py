"""Checking production: the cadence of the checks, the drop test, the baseline, broken inputs,
and what a check window leads to (no action, a hold, a retrain or a refresh)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from loopwise.autopilot.decide.decision import (
    DAY_MS,
    Decision,
    RetrainRequest,
    escalation,
    when,
)
from loopwise.autopilot.observe import Observation
from loopwise.autopilot.policy import Policy, duration_ms
from loopwise.autopilot.state import State

__all__ = [
    "BASELINE_ROWS",
    "Assessment",
    "assess_check",
    "check_start_ms",
    "decide_check",
    "drop_test",
    "refresh_due",
    "retrain_blocked",
    "retrain_when_rows_arrive",
]

BASELINE_ROWS = 20_000
"""The most labelled rows the running baseline remembers (older checks fade out)."""


@dataclass(frozen=True)
class Assessment:
    """A check window judged (``assess_check``): the state and evidence so far, the drop test,
    and whether it triggers a retrain; ``decision`` when nothing more is needed to decide."""

    state: State
    evidence: dict[str, Any]
    drop: dict[str, Any]
    drift_note: str
    triggered: bool
    decision: Decision | None = None


def retrain_blocked(policy: Policy, state: State, now_ms: int) -> str:
    """Why a retrain may not start now (the cooldown, the daily budget); empty when it may."""
    retrain = policy.retrain
    cooldown = duration_ms(retrain.cooldown, "retrain.cooldown")
    if state.retrains_ms and now_ms - state.retrains_ms[-1] < cooldown:
        return f"the last retrain was under {retrain.cooldown} ago (retrain.cooldown)"
    if state.retrains_since(now_ms - DAY_MS) >= retrain.max_per_day:
        return f"{retrain.max_per_day} retrains in the last day already (retrain.max_per_day)"
    return ""


def retrain_when_rows_arrive(policy: Policy, state: State, now_ms: int) -> RetrainRequest | None:
    """A retrain waiting for rows since the drop tries at every tick, not once per window
    (None while the cooldown or the budget holds it back)."""
    if retrain_blocked(policy, state, now_ms):
        return None
    since = when(state.drop_since_ms)
    why = f"Enough labelled rows since the drop began ({since})"
    return RetrainRequest(why, copy.deepcopy(state), {})


def check_start_ms(policy: Policy, state: State, now_ms: int) -> int | None:
    """The start of the window to check now (None: the next check is not due yet)."""
    window = duration_ms(policy.monitor.window, "monitor.window")
    last = state.last_check_ms
    if last is None or now_ms - last >= window:
        return now_ms - window
    return None


def drop_test(
    policy: Policy,
    state: State,
    seen: Observation,
    metric: str,
) -> dict[str, Any]:
    """Has the metric dropped from the baseline by more than ``monitor.max_drop`` (relative)?
    A one-sided z-test at ``monitor.alpha`` of "worse by more than the allowed drop", with
    the uncertainty of the window and of the baseline, so that noise does not retrain."""
    higher = policy.higher_is_better(metric)
    value, source, se = seen.realised, "realised", seen.realised_se
    # An estimate stands in only for a version already judged on labels: right after a
    # promotion, few labels mean "wait for them", not "trust the estimate".
    estimate_allowed = "estimated_performance" in policy.retrain.on and state.realised_checks
    if value is None and estimate_allowed:
        value, source, se = seen.estimated, "estimated", None
    if value is None or state.baseline is None:
        summary = (
            f"{metric} not measurable yet: {seen.labelled} labelled rows of version "
            f"{state.production}, {policy.monitor.min_labelled} needed (monitor.min_labelled)"
        )
        return {"triggered": False, "summary": summary}
    allowed = policy.monitor.max_drop * abs(state.baseline)
    fall = (state.baseline - value) if higher else (value - state.baseline)
    if metric == "rmse" and se is not None:
        se = se / (2 * max(value, 1e-12))  # the delta method: from the MSE to its root
    if se:
        # The baseline is an estimate too, from baseline_rows labelled rows.
        rows = max(seen.labelled, 1)
        se = math.sqrt(se**2 * (1 + rows / max(state.baseline_rows, 1)))
    excess = fall - allowed
    p_value = 0.5 * math.erfc(excess / se / math.sqrt(2)) if se else float(excess <= 0)
    floor = policy.monitor.minimum
    below_floor = floor is not None and (value < floor if higher else value > floor)
    dropped = fall > allowed and p_value < policy.monitor.alpha
    triggered = (dropped or below_floor) and (
        source == "estimated" or "performance" in policy.retrain.on
    )
    summary = (
        f"{source} {metric} {value:.4f} against a baseline of {state.baseline:.4f} "
        f"({'worse' if fall > 0 else 'better'} by {abs(fall):.4f}, "
        f"{'beyond' if fall > allowed else 'within'} the allowed {allowed:.4f}; "
        f"p = {p_value:.3g})"
    )
    return {
        "triggered": bool(triggered),
        "summary": summary,
        "value": value,
        "source": source,
        "fall": fall,
        "allowed": allowed,
        "p_value": p_value,
        "below_minimum": below_floor,
    }


def assess_check(
    policy: Policy, state: State, seen: Observation, *, metric: str, start_ms: int, now_ms: int
) -> Assessment:
    """Judge one check window of production's traffic (``seen``, on ``metric``): keep the
    checks' cadence, take the first baseline, quarantine and escalate broken inputs, test for
    a drop, and fold a healthy window into the baseline. A window judged healthy on its labels
    ends the episode of trouble: ``State.failed_candidates`` starts again from 0."""
    state = copy.deepcopy(state)
    state.metric = metric
    window = duration_ms(policy.monitor.window, "monitor.window")
    last = state.last_check_ms
    # Checks keep their cadence from the start (each judges one whole window), however
    # late in its period a tick comes.
    state.last_check_ms = now_ms if last is None else last + (now_ms - last) // window * window
    evidence: dict[str, Any] = {"check": seen.to_json(), "metric": metric}
    first = state.baseline is None and seen.realised is not None
    if seen.realised is not None:
        state.realised_checks += 1
    if first:
        state.baseline, state.baseline_source = seen.realised, "the first check with enough labels"
        state.baseline_rows = seen.labelled
    evidence["baseline"] = {
        "value": state.baseline,
        "rows": state.baseline_rows,
        "source": state.baseline_source,
    }
    if policy.monitor.validation and seen.invalid:
        state.quarantine.append([start_ms, now_ms])
        skewed = (
            f"; skewed against the training data: {', '.join(seen.skewed)}" if seen.skewed else ""
        )
        escalated = escalation(
            state,
            f"Served inputs break the training data's validation suite in this window "
            f"({'; '.join(seen.findings[:3])}{skewed}). Its traffic is quarantined: no "
            "retraining on it, nothing promoted.",
            evidence,
            pause=False,
            problem="invalid-inputs:" + ",".join(seen.invalid),
        )
        return Assessment(state, evidence, {}, "", triggered=False, decision=escalated)
    drop = drop_test(policy, state, seen, metric)
    evidence["drop"] = drop
    drift_note = (
        f"drift in {len(seen.drifted)} input column(s) ({', '.join(seen.drifted[:5])}); "
        if seen.drift_share >= policy.monitor.drift_share
        else ""
    )
    triggered = drop["triggered"] or (
        "drift" in policy.retrain.on and seen.drift_share >= policy.monitor.drift_share
    )
    if not triggered:
        state.drop_since_ms, state.awaiting_rows = None, False
        if drop.get("source") == "realised" and state.phase == "watching":
            # Production judged healthy on labels ends the episode: candidates that failed
            # during it no longer count towards escalation.after_failed_candidates.
            state.failed_candidates = 0
        if seen.realised is not None and not first:
            # Fold a healthy check into the baseline (a running mean over the latest rows).
            assert state.baseline is not None
            kept = min(state.baseline_rows, BASELINE_ROWS)
            state.baseline = (state.baseline * kept + seen.realised * seen.labelled) / (
                kept + seen.labelled
            )
            state.baseline_rows = kept + seen.labelled
    return Assessment(state, evidence, drop, drift_note, bool(triggered))


def refresh_due(policy: Policy, state: State, now_ms: int) -> bool:
    """Whether a refresh after a change may be due (``Retrain.refresh_factor``): then the
    labelled rows since the change decide (``decide_check``)."""
    if state.regime_start_ms is None or policy.retrain.refresh_factor <= 0:
        return False
    return state.phase == "watching" and not retrain_blocked(policy, state, now_ms)


def decide_check(
    policy: Policy,
    assessment: Assessment,
    *,
    now_ms: int,
    change_start_ms: int | None = None,
    rows_since_change: int | None = None,
) -> Decision | RetrainRequest:
    """What a judged check window leads to: no action, a refresh, a hold, or a retrain.

    ``change_start_ms``: when the drop began, needed when the window triggers a retrain and no
    drop is known yet; ``rows_since_change``: the labelled rows since the production model's
    change began, needed when ``refresh_due``."""
    if assessment.decision is not None:
        return assessment.decision
    state, evidence = copy.deepcopy(assessment.state), dict(assessment.evidence)
    drop, note = assessment.drop, assessment.drift_note.capitalize()
    if not assessment.triggered:
        if refresh_due(policy, state, now_ms):
            assert rows_since_change is not None and state.regime_start_ms is not None
            learnt = max(state.regime_rows, 1)
            if rows_since_change >= policy.retrain.refresh_factor * learnt:
                state.drop_since_ms = state.regime_start_ms
                state.regime_start_ms = None  # one refresh per change
                why = (
                    f"{drop['summary']}; {rows_since_change:,} labelled rows since the change "
                    f"began, {rows_since_change / learnt:.1f} times what version "
                    f"{state.production} learnt from (retrain.refresh_factor)"
                )
                return RetrainRequest(why, state, evidence, refresh=True)
        return Decision("observe", f"{note}{drop['summary']}: no action.", state, evidence)
    if state.drop_since_ms is None:
        assert change_start_ms is not None
        state.drop_since_ms = change_start_ms
        evidence["change_point_ms"] = change_start_ms
    if state.phase == "paused":
        summary = (
            f"{note}{drop['summary']}; paused ({state.paused_reason}), so no retraining "
            "until resumed."
        )
        return Decision("hold", summary, state, evidence)
    wait = retrain_blocked(policy, state, now_ms)
    if wait:
        return Decision("hold", f"{drop['summary']}; {wait}.", state, evidence)
    return RetrainRequest(f"{note}{drop['summary']}", state, evidence)
