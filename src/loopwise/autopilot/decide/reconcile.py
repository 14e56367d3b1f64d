"""The start of a tick: make the deployment agree with what the state expects."""

from __future__ import annotations

import copy

from loopwise.autopilot.decide.decision import (
    Action,
    ChangePlan,
    Decision,
    MoveAlias,
    RaiseAlert,
    Reconciliation,
)
from loopwise.autopilot.state import State
from loopwise.store import Deployment, TrafficPlan

__all__ = ["decide_reconcile"]


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
        state.realised_checks, state.drop_evidence = 0, []
        state.judged_until_ms = None
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
