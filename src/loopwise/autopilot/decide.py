"""The autopilot's decisions, apart from their effects: pure functions from what a tick
observed (the policy, the state, a check window, a gate's or a guardrail's verdict, the clock)
to the decision to record and the actions that follow it.

Nothing here reads or writes anything. The controller gathers the facts, calls a ``decide_*``
function, records the decision it returns (claiming the next number) and only then applies
its actions, in order. Where a fact is needed on one path only (when the drop began, the
server's counters as a step starts), the decision is taken in two calls, so that the
controller fetches no more than the old tick did.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from loopwise.autopilot.observe import Observation
from loopwise.autopilot.policy import Policy, duration_ms
from loopwise.autopilot.retraining import GateResult, TrainingData
from loopwise.autopilot.rollout import Verdict, last_step, step_plan
from loopwise.autopilot.state import Counts, PendingRetrain, Rollout, State
from loopwise.store import Deployment, TrafficPlan

__all__ = [
    "Action",
    "Assessment",
    "ChangePlan",
    "Decision",
    "FinishRetrain",
    "MoveAlias",
    "RaiseAlert",
    "Reconciliation",
    "RetrainRequest",
    "assess_check",
    "check_start_ms",
    "decide_check",
    "decide_gates",
    "decide_pipeline_failed",
    "decide_pipeline_refused",
    "decide_reconcile",
    "decide_retrain",
    "decide_rollout_start",
    "decide_rollout_step",
    "next_step",
    "refresh_due",
    "retrain_blocked",
    "retrain_when_rows_arrive",
]

DAY_MS = 86_400_000
BASELINE_ROWS = 20_000
"""The most labelled rows the running baseline remembers (older checks fade out)."""


# -- what a decision does --------------------------------------------------------------------
@dataclass(frozen=True)
class ChangePlan:
    """Set the deployment's plan, from the revision it was at when announced."""

    stage: ClassVar[str] = "before-plan"
    plan: TrafficPlan
    from_revision: int


@dataclass(frozen=True)
class RaiseAlert:
    """Open the latest (escalate) decision's alert, once, and post it to the webhook."""

    stage: ClassVar[str] = "before-alert"


@dataclass(frozen=True)
class FinishRetrain:
    """Run the announced retrain's pipeline, gate the candidate and decide again."""

    stage: ClassVar[str] = "before-pipeline"


@dataclass(frozen=True)
class MoveAlias:
    """Point the policy's ``rollout.alias`` at ``State.alias`` (if the policy names one)."""

    stage: ClassVar[str] = "before-alias"


Action = ChangePlan | RaiseAlert | FinishRetrain | MoveAlias
"""An effect, applied after its decision is recorded; ``stage`` names the checkpoint
(``controller.checkpoint``) between the two: ``f"{kind}:{stage}"``."""


@dataclass(frozen=True)
class Decision:
    """A decision to record (its kind, summary, the state it leaves and its evidence) and the
    actions to apply once it is recorded."""

    kind: str
    summary: str
    state: State
    evidence: dict[str, Any] = field(default_factory=dict)
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True)
class Reconciliation:
    """How a tick starts: the earlier decisions' effects to finish first (``actions``, with
    no checkpoint), a decision to record (or None), and whether the tick goes on."""

    decision: Decision | None
    actions: tuple[Action, ...]
    proceed: bool


@dataclass(frozen=True)
class RetrainRequest:
    """A decision to retrain, before the facts that say whether it can: the pipeline being
    allowed, and the labelled rows there are (``decide_retrain``)."""

    why: str
    state: State
    evidence: dict[str, Any]
    refresh: bool = False


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


def when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000))


def _escalation(
    state: State, summary: str, evidence: dict[str, Any], *, pause: bool, problem: str = ""
) -> Decision:
    """Escalate to a person (an alert). ``problem`` names a lasting problem (e.g. broken
    columns): its repeats update one open alert instead of opening new ones."""
    evidence = {**evidence, "problem": problem}
    if pause:
        state.phase = "paused"
        state.paused_reason = summary
    return Decision("escalate", summary, state, evidence, (RaiseAlert(),))


def _plan_change(
    state: State,
    deployed: Deployment,
    plan: TrafficPlan,
    kind: str,
    summary: str,
    evidence: dict[str, Any],
) -> Decision:
    """Announce a new plan with the revision it will have (``expect``); the action sets it."""
    revision = deployed.revision
    same = deployed.plan == plan
    state.expect = {"plan": plan.to_json(), "revision": revision if same else revision + 1}
    return Decision(kind, summary, state, evidence, (ChangePlan(plan, revision),))


def _too_many_failures(policy: Policy, state: State) -> bool:
    return state.failed_candidates >= policy.escalation.after_failed_candidates


def retrain_blocked(policy: Policy, state: State, now_ms: int) -> str:
    """Why a retrain may not start now (the cooldown, the daily budget); empty when it may."""
    retrain = policy.retrain
    cooldown = duration_ms(retrain.cooldown, "retrain.cooldown")
    if state.retrains_ms and now_ms - state.retrains_ms[-1] < cooldown:
        return f"the last retrain was under {retrain.cooldown} ago (retrain.cooldown)"
    if state.retrains_since(now_ms - DAY_MS) >= retrain.max_per_day:
        return f"{retrain.max_per_day} retrains in the last day already (retrain.max_per_day)"
    return ""


# -- the start of a tick ---------------------------------------------------------------------
def decide_reconcile(
    state: State, deployed: Deployment, last_kind: str | None, now_ms: int
) -> Reconciliation:
    """Make the deployment agree with the state: start on the first tick; alert again after an
    escalation (the alert is raised once); finish a plan change announced but not made; adopt
    a plan a person set (one version) or pause (a split the autopilot did not make)."""
    state = copy.deepcopy(state)
    if last_kind is None:
        shares = deployed.plan.shares
        if len(shares) != 1 or deployed.plan.shadow:
            state.phase = "paused"
            state.paused_reason = "the plan splits traffic; the autopilot starts from one version"
            summary = (
                f"Not started: {deployed.name} follows plan {deployed.plan.spec}; the "
                "autopilot starts from a plan that sends all traffic to one version."
            )
            return Reconciliation(Decision("hold", summary, state), (), proceed=False)
        state.production = next(iter(shares))
        state.expect = {"plan": deployed.plan.to_json(), "revision": deployed.revision}
        state.last_check_ms = now_ms  # the first check judges a whole window
        summary = (
            f"Watching {deployed.name}: version {state.production} "
            f"takes all traffic (revision {deployed.revision})."
        )
        return Reconciliation(Decision("start", summary, state), (), proceed=True)
    actions: list[Action] = [RaiseAlert()] if last_kind == "escalate" else []
    expect = state.expect
    if expect is None:
        return Reconciliation(None, tuple(actions), proceed=True)
    plan = TrafficPlan.from_json(expect["plan"])
    if deployed.revision == expect["revision"] and deployed.plan == plan:
        if state.alias is not None:
            actions.append(MoveAlias())
        return Reconciliation(None, tuple(actions), proceed=True)
    if deployed.revision == expect["revision"] - 1:
        # Announced, then interrupted: finish it; that was the interrupted tick's last act.
        actions.append(ChangePlan(plan, deployed.revision))
        return Reconciliation(None, tuple(actions), proceed=False)
    # Someone else changed the plan: follow them, and stop acting on a rollout.
    shares = deployed.plan.shares
    summary = f"The plan was changed outside the autopilot (revision {deployed.revision}: {deployed.plan.spec})"
    state.expect = {"plan": deployed.plan.to_json(), "revision": deployed.revision}
    state.rollout = None
    state.pending_retrain = None
    if len(shares) == 1 and not deployed.plan.shadow:
        state.phase = "watching" if state.phase != "paused" else "paused"
        state.production = next(iter(shares))
        state.baseline, state.baseline_source = None, ""
        decision = Decision(
            "adopt", f"{summary}; version {state.production} is production now.", state
        )
    else:
        state.phase = "paused"
        state.paused_reason = summary
        decision = Decision(
            "hold",
            f"{summary}; paused until `loopwise autopilot resume {deployed.name}`.",
            state,
        )
    return Reconciliation(decision, tuple(actions), proceed=False)


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


# -- checking production ---------------------------------------------------------------------
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
    if value is None and "estimated_performance" in policy.retrain.on:
        value, source, se = seen.estimated, "estimated", None
    if value is None or state.baseline is None:
        return {"triggered": False, "summary": f"{metric} not measurable yet (too few labels)"}
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
    a drop, and fold a healthy window into the baseline."""
    state = copy.deepcopy(state)
    state.metric = metric
    window = duration_ms(policy.monitor.window, "monitor.window")
    last = state.last_check_ms
    # Checks keep their cadence from the start (each judges one whole window), however
    # late in its period a tick comes.
    state.last_check_ms = now_ms if last is None else last + (now_ms - last) // window * window
    evidence: dict[str, Any] = {"check": seen.to_json(), "metric": metric}
    first = state.baseline is None and seen.realised is not None
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
        escalation = _escalation(
            state,
            f"Served inputs break the training data's validation suite in this window "
            f"({'; '.join(seen.findings[:3])}{skewed}). Its traffic is quarantined: no "
            "retraining on it, nothing promoted.",
            evidence,
            pause=False,
            problem="invalid-inputs:" + ",".join(seen.invalid),
        )
        return Assessment(state, evidence, {}, "", triggered=False, decision=escalation)
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


# -- retraining and gating -------------------------------------------------------------------
def decide_pipeline_refused(request: RetrainRequest, refusal: str) -> Decision:
    """The operator does not allow the policy's pipeline: nothing is imported, logged or
    counted; each check escalates again (one open alert) until the operator allows it or
    the policy names another."""
    return _escalation(
        copy.deepcopy(request.state),
        f"{request.why}; not retrained: {refusal}",
        request.evidence,
        pause=False,
        problem="pipeline-not-allowed",
    )


def decide_retrain(
    policy: Policy, request: RetrainRequest, data: TrainingData | None, *, now_ms: int,
    quiet: bool = False,
) -> Decision | None:  # fmt: skip
    """Retrain on ``data`` (the labelled rows since the drop, logged as datasets), refuse
    data that break production's training-data suite, or wait for more rows: a 'hold'
    decision, unless ``quiet`` (a tick that only looks again records nothing: None)."""
    state, evidence = copy.deepcopy(request.state), dict(request.evidence)
    if data is None:
        if quiet:
            return None
        state.awaiting_rows = True
        summary = (
            f"{request.why}; fewer than {policy.retrain.min_rows} labelled rows since the "
            f"change (estimated at {when(state.drop_since_ms)}) to retrain on yet "
            "(retrain.min_rows): waiting for more."
        )
        return Decision("hold", summary, state, evidence)
    state.awaiting_rows = False
    evidence["data"] = {"rows": data.rows, "start_ms": data.start_ms, "end_ms": data.end_ms}
    if data.invalid:
        state.failed_candidates += 1
        return _escalation(
            state,
            f"{request.why}; retraining refused: the recent labelled data break production's "
            f"training-data suite ({'; '.join(data.invalid[:3])}).",
            {**evidence, "invalid": data.invalid},
            pause=_too_many_failures(policy, state),
        )
    assert data.train is not None and data.holdout is not None
    evidence["data"] = {**evidence["data"], "train": data.train.ref, "holdout": data.holdout.ref}
    state.retrains_ms = [t for t in state.retrains_ms if t >= now_ms - DAY_MS]
    state.retrains_ms.append(now_ms)
    state.pending_retrain = PendingRetrain(
        train=data.train.ref,
        holdout=data.holdout.ref,
        since_ms=state.drop_since_ms,
        rows=data.rows,
        refresh=request.refresh,
    )
    summary = f"{request.why}: retraining {policy.retrain.pipeline} on {data.rows:,} labelled rows."
    return Decision("retrain", summary, state, evidence, (FinishRetrain(),))


def decide_pipeline_failed(
    policy: Policy, state: State, message: str, error: dict[str, Any]
) -> Decision:
    """The retraining pipeline failed (``error``: the error's JSON envelope body)."""
    state = copy.deepcopy(state)
    state.pending_retrain = None
    state.failed_candidates += 1
    return _escalation(
        state,
        f"The retraining pipeline failed: {message}",
        {"error": error},
        pause=_too_many_failures(policy, state),
    )


def _candidate_evidence(candidate: int, run_id: str, result: GateResult) -> dict[str, Any]:
    return {"candidate": candidate, "pipeline_run": run_id, "gates": result.checks}


def decide_gates(
    policy: Policy, state: State, candidate: int, run_id: str, result: GateResult
) -> Decision | None:
    """The decision that stops a retrained ``candidate`` at its gates: below
    ``monitor.minimum`` (escalate, pause), failed (reject; escalate and pause after too many
    in a row; a failed refresh is no failure). None when it passed: ``decide_rollout_start``."""
    pending = state.pending_retrain
    assert pending is not None
    state = copy.deepcopy(state)
    state.pending_retrain = None
    evidence = _candidate_evidence(candidate, run_id, result)
    minimum = result.checks.get("minimum")
    if minimum is not None and not minimum["met"]:
        state.failed_candidates += 1
        return _escalation(
            state,
            f"Retrained version {candidate} reaches only {state.metric} "
            f"{result.candidate_metric:.4f} on recent data, below the acceptable "
            f"{minimum['minimum']}: retraining does not restore the model; paused.",
            evidence,
            pause=True,
        )
    if result.passed:
        return None
    summary = f"Version {candidate} failed its gates: {'; '.join(result.failed)}."
    if pending.refresh:  # production is fine; a refresh that does not help is no failure
        return Decision(
            "reject", summary + " Production stays (a refresh, not a repair).", state, evidence
        )
    state.failed_candidates += 1
    if _too_many_failures(policy, state):
        return _escalation(
            state,
            f"{summary} {state.failed_candidates} candidates in a row failed; paused.",
            evidence,
            pause=True,
        )
    return Decision("reject", summary + " Production stays.", state, evidence)


def decide_rollout_start(
    policy: Policy,
    state: State,
    candidate: int,
    run_id: str,
    result: GateResult,
    *,
    deployed: Deployment,
    counts_at_start: Counts | None,
    now_ms: int,
) -> Decision:
    """A candidate that passed its gates starts its rollout (step 1), or is promoted at once
    when the rollout has one step (blue-green). ``counts_at_start``: the inference server's
    request counters now (``rollout.counts_now``)."""
    pending, production = state.pending_retrain, state.production
    assert pending is not None and production is not None
    state = copy.deepcopy(state)
    state.pending_retrain = None
    state.phase = "rollout"
    state.rollout = Rollout(
        candidate=candidate,
        step=0,
        started_ms=now_ms,
        gate_metric=result.candidate_metric,
        gate_rows=result.rows,
        expected_shift=result.checks["prediction_shift"],
        counts_at_start=counts_at_start,
        since_ms=pending.since_ms,
        rows=pending.rows,
        refresh=pending.refresh,
    )
    evidence = _candidate_evidence(candidate, run_id, result)
    plan = step_plan(policy, production, candidate, 0)
    summary = (
        f"Version {candidate} passed its gates ({state.metric} "
        f"{result.candidate_metric:.4f} vs production's {result.production_metric:.4f} "
        f"on the held-out latest traffic)"
    )
    if last_step(policy) == 0:
        return _promotion(
            state, deployed, candidate, result.candidate_metric, result.rows, summary, evidence
        )
    return _plan_change(
        state,
        deployed,
        plan,
        "rollout",
        f"{summary}: {policy.rollout.strategy} step 1, plan "
        f"{plan.spec}{' with a shadow' if plan.shadow else ''}.",
        evidence,
    )


# -- rollouts --------------------------------------------------------------------------------
def next_step(policy: Policy, rollout: Rollout, verdict: Verdict) -> int | None:
    """The step a rollout goes on to after ``verdict`` (None: it waits, is rolled back, or is
    promoted); a new step needs the server's counters as it starts."""
    step = rollout.step + 1
    if verdict.action != "advance" or step >= last_step(policy):
        return None
    return step


def decide_rollout_step(
    policy: Policy,
    state: State,
    verdict: Verdict,
    *,
    deployed: Deployment,
    now_ms: int,
    counts_now: Counts | None = None,
) -> list[Decision]:
    """What the guardrails' ``verdict`` on the rollout step does: nothing (wait), roll back
    (and escalate and pause after too many failures in a row), promote after the last step,
    or go on to the next step (``counts_now``: the server's counters, when ``next_step``)."""
    rollout, production = state.rollout, state.production
    assert rollout is not None and production is not None
    if verdict.action == "wait":
        return []
    state = copy.deepcopy(state)
    candidate = rollout.candidate
    evidence = {"candidate": candidate, "step": rollout.step, **verdict.evidence}
    if verdict.action == "rollback":
        state.phase, state.rollout = "watching", None
        state.failed_candidates += 1
        summary = f"Rolled back version {candidate}: {verdict.reason}."
        plan = TrafficPlan({production: 100})
        rolled_back = _plan_change(state, deployed, plan, "rollback", summary, evidence)
        if not _too_many_failures(policy, state):
            return [rolled_back]
        escalation = _escalation(
            copy.deepcopy(rolled_back.state),
            f"{state.failed_candidates} candidates in a row failed; paused.",
            evidence,
            pause=True,
        )
        return [rolled_back, escalation]
    step = next_step(policy, rollout, verdict)
    if step is None:
        # The baseline is what the gate measured on held-out rows: the canary's own
        # figure rests on a small share of traffic.
        summary = f"Version {candidate} held up at step {rollout.step + 1} ({verdict.reason})"
        promoted = _promotion(
            state, deployed, candidate, rollout.gate_metric, rollout.gate_rows, summary, evidence
        )
        return [promoted]
    state.rollout = replace(rollout, step=step, started_ms=now_ms, counts_at_start=counts_now)
    plan = step_plan(policy, production, candidate, step)
    summary = f"Version {candidate} held up ({verdict.reason}): step {step + 1}, plan {plan.spec}."
    return [_plan_change(state, deployed, plan, "rollout", summary, evidence)]


def _promotion(
    state: State,
    deployed: Deployment,
    candidate: int,
    metric: float,
    rows: int,
    summary: str,
    evidence: dict[str, Any],
) -> Decision:
    """Promote ``candidate`` (``metric`` on ``rows`` held-out rows becomes the baseline)."""
    previous = state.production
    evidence = {**evidence, "replaced": previous}
    made = state.rollout
    if made is None or made.refresh or made.since_ms is None:
        state.regime_start_ms, state.regime_rows = None, 0
    else:  # trained on the little data after a change: refresh once more data are in
        state.regime_start_ms, state.regime_rows = made.since_ms, int(made.rows)
    state.phase, state.rollout, state.production = "watching", None, candidate
    state.baseline, state.baseline_source = metric, f"version {candidate} when promoted"
    state.baseline_rows = rows
    state.failed_candidates, state.drop_since_ms = 0, None
    state.alias = candidate
    return _plan_change(
        state,
        deployed,
        TrafficPlan({candidate: 100}),
        "promote",
        f"{summary}: promoted; it takes all traffic (was version {previous}).",
        evidence,
    )
