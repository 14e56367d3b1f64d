"""Rollouts: what the guardrails' verdict on a step does (wait, roll back, advance, promote)."""

from __future__ import annotations

import copy
from dataclasses import replace

from loopwise.autopilot.decide.decision import (
    Decision,
    escalation,
    plan_change,
    promotion,
    too_many_failures,
)
from loopwise.autopilot.policy import Policy
from loopwise.autopilot.rollout import Verdict, last_step, step_plan
from loopwise.autopilot.state import Counts, Rollout, State
from loopwise.store import Deployment, TrafficPlan

__all__ = ["decide_rollout_step", "next_step"]


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
        rolled_back = plan_change(state, deployed, plan, "rollback", summary, evidence)
        if not too_many_failures(policy, state):
            return [rolled_back]
        escalated = escalation(
            copy.deepcopy(rolled_back.state),
            f"{state.failed_candidates} candidates in a row failed; paused.",
            evidence,
            pause=True,
        )
        return [rolled_back, escalated]
    step = next_step(policy, rollout, verdict)
    if step is None:
        # The baseline is what the gate measured on held-out rows: the canary's own
        # figure rests on a small share of traffic.
        summary = f"Version {candidate} held up at step {rollout.step + 1} ({verdict.reason})"
        promoted = promotion(
            state, deployed, candidate, rollout.gate_metric, rollout.gate_rows, summary, evidence
        )
        return [promoted]
    state.rollout = replace(rollout, step=step, started_ms=now_ms, counts_at_start=counts_now)
    plan = step_plan(policy, production, candidate, step)
    summary = f"Version {candidate} held up ({verdict.reason}): step {step + 1}, plan {plan.spec}."
    return [plan_change(state, deployed, plan, "rollout", summary, evidence)]
