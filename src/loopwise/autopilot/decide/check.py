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
    "DROP_CHECKS",
    "LABELS_LOOKBACK_CHECKS",
    "Assessment",
    "assess_check",
    "check_start_ms",
    "decide_check",
    "drop_test",
    "labelled_since_ms",
    "refresh_due",
    "retrain_blocked",
    "retrain_when_rows_arrive",
]

BASELINE_ROWS = 1000
"""The labelled rows a baseline settles on: a version's baseline (its gate figure, or its first
check) takes in its first checks without a drop until it rests on this many rows, and then
holds until the next promotion, so that slow decay is never absorbed into it."""

LABELS_LOOKBACK_CHECKS = 4
"""How many check windows back a check looks for labelled rows not judged yet: labels that
come in later than that are not waited for."""

DROP_CHECKS = 3
"""The most checks in a row whose evidence of a drop is pooled (``drop_test``)."""


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


def labelled_since_ms(policy: Policy, state: State, start_ms: int, now_ms: int) -> int:
    """Where the labelled rows a check judges were served from: just after the last row the
    checks before judged (``State.judged_until_ms``), at most ``LABELS_LOOKBACK_CHECKS``
    windows back, so that rows whose labels come a window or more late are judged when
    their labels come in; ``start_ms`` (the check's window) when no check judged any yet."""
    if state.judged_until_ms is None:
        return start_ms
    window = duration_ms(policy.monitor.window, "monitor.window")
    return min(max(state.judged_until_ms, now_ms - LABELS_LOOKBACK_CHECKS * window), now_ms)


def drop_test(
    policy: Policy,
    state: State,
    seen: Observation,
    metric: str,
) -> dict[str, Any]:
    """Has the metric dropped from the baseline by more than ``monitor.max_drop`` (relative)?
    A one-sided z-test at ``monitor.alpha`` of "worse by more than the allowed drop", with
    the uncertainty of the rows judged and of the baseline, so that noise does not retrain.

    Evidence adds up across checks: the labelled rows of this check are pooled with those of
    the checks just before it (``State.drop_evidence``, at most ``DROP_CHECKS`` in all) as long
    as each looked worse than the allowed drop; a check within it clears them. So slow decay,
    too small to show in one check, shows in a few, and one inconclusive check does not forget
    a drop seen the check before. False alarms: with production as good as its baseline,
    each pooled test is at ``alpha`` on rows whose true fall is below the allowed drop; at
    ``alpha`` 0.05, 365 labelled rows a check and a baseline on 1,000 rows, 0.3% of checks
    alarm (1.1% with an exactly known baseline), and at a true fall of exactly the allowed
    drop about 2% (6% with a known baseline); tests/autopilot/test_drift_regimes.py checks
    the rate stays under ``alpha``."""
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
    pool: list[list[float]] = []
    if source == "realised" and se is not None and fall > allowed:
        since = seen.start_ms if seen.labelled_from_ms is None else seen.labelled_from_ms
        until = seen.end_ms if seen.labelled_until_ms is None else seen.labelled_until_ms
        here = [float(since), float(until), float(seen.labelled), fall, se]
        pool = [*state.drop_evidence, here][-DROP_CHECKS:]
    pooled_fall, pooled_se, rows = _pooled(pool) if pool else (fall, se, seen.labelled)
    if pooled_se:
        # The baseline is an estimate too, from baseline_rows labelled rows.
        ratio = max(rows, 1) / max(state.baseline_rows, 1)
        pooled_se = math.sqrt(pooled_se**2 * (1 + ratio))
    excess = pooled_fall - allowed
    p_value = (
        0.5 * math.erfc(excess / pooled_se / math.sqrt(2)) if pooled_se else float(excess <= 0)
    )
    floor = policy.monitor.minimum
    below_floor = floor is not None and (value < floor if higher else value > floor)
    dropped = pooled_fall > allowed and p_value < policy.monitor.alpha
    triggered = (dropped or below_floor) and (
        source == "estimated" or "performance" in policy.retrain.on
    )
    over = (
        f"over the last {len(pool)} checks ({rows:,} labelled rows) worse by {pooled_fall:.4f}; "
        if len(pool) > 1
        else ""
    )
    summary = (
        f"{source} {metric} {value:.4f} against a baseline of {state.baseline:.4f} "
        f"({'worse' if fall > 0 else 'better'} by {abs(fall):.4f}, "
        f"{'beyond' if fall > allowed else 'within'} the allowed {allowed:.4f}; "
        f"{over}p = {p_value:.3g})"
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
        "pooled": {
            "checks": len(pool),
            "rows": rows if pool else 0,
            "since_ms": int(pool[0][0]) if pool else None,
            "fall": pooled_fall if pool else None,
        },
        "pool": pool,  # [start_ms, end_ms, rows, fall, se] per check pooled
    }


def _pooled(pool: list[list[float]]) -> tuple[float, float, int]:
    """The fall, its standard error and the rows of checks pooled (``[start_ms, end_ms, rows,
    fall, se]`` each): the row-weighted mean fall, as if all their rows were one check."""
    rows = sum(entry[2] for entry in pool)
    fall = sum(entry[2] * entry[3] for entry in pool) / rows
    se = math.sqrt(sum((entry[2] * entry[4]) ** 2 for entry in pool)) / rows
    return fall, se, int(rows)


def assess_check(
    policy: Policy, state: State, seen: Observation, *, metric: str, start_ms: int, now_ms: int
) -> Assessment:
    """Judge one check window of production's traffic (``seen``, on ``metric``): keep the
    checks' cadence, take the first baseline, quarantine and escalate broken inputs, test for
    a drop, and fold a healthy window into a baseline still settling. A window judged healthy on its labels
    ends the episode of trouble: ``State.failed_candidates`` starts again from 0."""
    state = copy.deepcopy(state)
    state.metric = metric
    window = duration_ms(policy.monitor.window, "monitor.window")
    last = state.last_check_ms
    # Checks keep their cadence from the start (each judges one whole window), however
    # late in its period a tick comes.
    state.last_check_ms = now_ms if last is None else last + (now_ms - last) // window * window
    evidence: dict[str, Any] = {"check": seen.to_json(), "metric": metric}
    if seen.realised is not None and seen.labelled_until_ms is not None:
        state.judged_until_ms = seen.labelled_until_ms
    elif state.judged_until_ms is None:  # nothing judged: these rows wait for their labels
        state.judged_until_ms = seen.labelled_from_ms
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
    if seen.unchecked:
        drift_note = f"inputs not checked: {seen.unchecked} " + drift_note
    triggered = drop["triggered"] or (
        "drift" in policy.retrain.on and seen.drift_share >= policy.monitor.drift_share
    )
    if drop.get("source") == "realised":
        state.drop_evidence = drop["pool"]
    if not triggered:
        state.drop_since_ms, state.awaiting_rows = None, False
        if drop.get("source") == "realised" and state.phase == "watching":
            # Production judged healthy on labels ends the episode: candidates that failed
            # during it no longer count towards escalation.after_failed_candidates.
            state.failed_candidates = 0
        clear = drop.get("source") == "realised" and not drop["pool"]
        if clear and not first and state.baseline_rows < BASELINE_ROWS:
            _settle_baseline(state, seen)
    return Assessment(state, evidence, drop, drift_note, bool(triggered))


def _settle_baseline(state: State, seen: Observation) -> None:
    """Fold a check with no sign of a drop into a baseline still settling (on fewer than
    ``BASELINE_ROWS`` rows): the mean over the version's first labelled rows."""
    assert state.baseline is not None and seen.realised is not None
    kept = state.baseline_rows
    state.baseline = (state.baseline * kept + seen.realised * seen.labelled) / (
        kept + seen.labelled
    )
    state.baseline_rows = kept + seen.labelled


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
        # A refresh follows a check that judged production healthy on its labels, never one
        # that could not judge it.
        if drop.get("source") == "realised" and refresh_due(policy, state, now_ms):
            assert rows_since_change is not None and state.regime_start_ms is not None
            learnt = max(state.regime_rows, 1)
            if rows_since_change >= policy.retrain.refresh_factor * learnt:
                state.drop_since_ms = state.regime_start_ms
                state.regime_start_ms = None  # one refresh per change
                why = (
                    f"{note}{drop['summary']}; {rows_since_change:,} labelled rows since the change "
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
        return Decision("hold", f"{note}{drop['summary']}; {wait}.", state, evidence)
    return RetrainRequest(f"{note}{drop['summary']}", state, evidence)
