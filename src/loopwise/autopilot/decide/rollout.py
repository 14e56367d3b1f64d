"""Rollouts: what the guardrails' verdict on a step does (wait, roll back, advance, promote)."""

from __future__ import annotations

import copy
import math
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

__all__ = ["decide_rollout_step", "next_step", "promoted_baseline"]


def next_step(policy: Policy, rollout: Rollout, verdict: Verdict) -> int | None:
    """The step a rollout goes on to after ``verdict`` (None: it waits, is rolled back, or is
    promoted); a new step needs the server's counters as it starts."""
    step = rollout.step + 1
    if verdict.action != "advance" or step >= last_step(policy):
        return None
    return step


def promoted_baseline(rollout: Rollout, verdict: Verdict, metric: str | None) -> tuple[float, int]:
    """What a promoted candidate is expected to score, and on how many rows: its metric over
    the gate's held-out rows and the labelled rows it answered in its last step together.

    The gate's figure alone goes stale while a rollout takes its time (it becomes the new
    baseline that drops are judged against); the last step's alone rests on a small share
    of traffic. Pooled, the figure is as steady as the gate's and as recent as the step."""
    live = verdict.evidence.get("metric") or {}
    labelled = verdict.evidence.get("labelled") or {}
    value, rows = live.get("candidate"), int(labelled.get("candidate") or 0)
    gate, gate_rows = rollout.gate_metric, max(int(rollout.gate_rows), 0)
    if value is None or rows <= 0:
        return gate, gate_rows
    if gate_rows <= 0:
        return float(value), rows
    if metric == "rmse":  # a root of a mean: pool the means of squares
        pooled = math.sqrt((gate**2 * gate_rows + value**2 * rows) / (gate_rows + rows))
    else:  # the other metrics are means of per-row losses (or one minus such a mean)
        pooled = (gate * gate_rows + value * rows) / (gate_rows + rows)
    return pooled, gate_rows + rows


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
        baseline, rows = promoted_baseline(rollout, verdict, state.metric)
        if rows != rollout.gate_rows:  # the last step's labelled rows weigh in
            evidence["baseline"] = {"value": baseline, "rows": rows,
                                    "gate": rollout.gate_metric, "gate_rows": rollout.gate_rows}  # fmt: skip
        summary = f"Version {candidate} held up at step {rollout.step + 1} ({verdict.reason})"
        return [
            promotion(state, deployed, candidate, baseline, rows, summary, evidence, now_ms=now_ms)
        ]
    state.rollout = replace(rollout, step=step, started_ms=now_ms, counts_at_start=counts_now)
    plan = step_plan(policy, production, candidate, step)
    summary = f"Version {candidate} held up ({verdict.reason}): step {step + 1}, plan {plan.spec}."
    return [plan_change(state, deployed, plan, "rollout", summary, evidence)]
