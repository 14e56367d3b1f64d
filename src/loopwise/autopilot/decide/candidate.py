"""Retraining and gating: wait for rows, refuse broken data, retrain; then reject a candidate at
its gates, or start its rollout (or promote it at once)."""

from __future__ import annotations

import copy
from typing import Any

from loopwise.autopilot.decide.decision import (
    DAY_MS,
    Decision,
    FinishRetrain,
    RetrainRequest,
    escalation,
    plan_change,
    promotion,
    too_many_failures,
    when,
)
from loopwise.autopilot.policy import Policy
from loopwise.autopilot.retraining import GateResult, TrainingData
from loopwise.autopilot.rollout import last_step, step_plan
from loopwise.autopilot.state import Counts, PendingRetrain, Rollout, State
from loopwise.store import Deployment

__all__ = [
    "decide_gates",
    "decide_pipeline_failed",
    "decide_pipeline_refused",
    "decide_retrain",
    "decide_rollout_start",
]


def _end_refresh(state: State) -> State:
    """A refresh is no drop: once it has been announced (its change point is kept in its
    ``PendingRetrain``) or could not start, the next drop estimates its own change point
    instead of training on the refreshed regime's rows (never a mix of old and new)."""
    state.drop_since_ms, state.awaiting_rows = None, False
    return state


def decide_pipeline_refused(request: RetrainRequest, refusal: str) -> Decision:
    """The operator does not allow the policy's pipeline: nothing is imported, logged or
    counted; each check escalates again (one open alert) until the operator allows it or
    the policy names another."""
    state = copy.deepcopy(request.state)
    return escalation(
        _end_refresh(state) if request.refresh else state,
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
    decision, unless ``quiet`` (a tick that only looks again records nothing: None). A
    refresh never waits: production is fine, so without the rows it is given up."""
    state, evidence = copy.deepcopy(request.state), dict(request.evidence)
    if data is None and request.refresh:
        summary = (
            f"{request.why}; fewer than {policy.retrain.min_rows} labelled rows since the "
            "change within retrain.window: no refresh."
        )
        return Decision("observe", summary, _end_refresh(state), evidence)
    if data is None:
        if quiet:
            return None
        state.awaiting_rows = True
        summary = (
            f"{request.why}; fewer than {policy.retrain.min_rows} labelled rows to retrain on "
            f"yet: those since the change (estimated at {when(state.drop_since_ms)}) within "
            f"retrain.window ({policy.retrain.window}), quarantined ranges left out "
            "(retrain.min_rows): waiting for more."
        )
        return Decision("hold", summary, state, evidence)
    state.awaiting_rows = False
    evidence["data"] = {"rows": data.rows, "start_ms": data.start_ms, "end_ms": data.end_ms}
    if data.invalid:
        state.failed_candidates += 1
        if request.refresh:
            _end_refresh(state)
        return escalation(
            state,
            f"{request.why}; retraining refused: the recent labelled data break production's "
            f"training-data suite ({'; '.join(data.invalid[:3])}).",
            {**evidence, "invalid": data.invalid},
            pause=too_many_failures(policy, state),
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
    if request.refresh:
        _end_refresh(state)
    summary = f"{request.why}: retraining {policy.retrain.pipeline} on {data.rows:,} labelled rows."
    return Decision("retrain", summary, state, evidence, (FinishRetrain(),))


def decide_pipeline_failed(
    policy: Policy, state: State, message: str, error: dict[str, Any]
) -> Decision:
    """The retraining pipeline failed (``error``: the error's JSON envelope body)."""
    state = copy.deepcopy(state)
    if state.pending_retrain is not None and state.pending_retrain.refresh:
        _end_refresh(state)  # announced by an earlier version, which kept its regime
    state.pending_retrain = None
    state.failed_candidates += 1
    return escalation(
        state,
        f"The retraining pipeline failed: {message}",
        {"error": error},
        pause=too_many_failures(policy, state),
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
        return escalation(
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
        _end_refresh(state)  # announced by an earlier version, which kept its regime
        return Decision(
            "reject", summary + " Production stays (a refresh, not a repair).", state, evidence
        )
    state.failed_candidates += 1
    if too_many_failures(policy, state):
        return escalation(
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
        return promotion(
            state,
            deployed,
            candidate,
            result.candidate_metric,
            result.rows,
            summary,
            evidence,
            now_ms=now_ms,
        )
    return plan_change(
        state,
        deployed,
        plan,
        "rollout",
        f"{summary}: {policy.rollout.strategy} step 1, plan "
        f"{plan.spec}{' with a shadow' if plan.shadow else ''}.",
        evidence,
    )
