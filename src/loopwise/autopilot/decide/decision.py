"""What a decision is: its kind, summary, the state it leaves, its evidence, and the actions
applied once it is recorded; and the pieces every kind of decision is built from."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from loopwise.autopilot.policy import Policy
from loopwise.autopilot.state import State
from loopwise.store import Deployment, TrafficPlan

__all__ = [
    "DAY_MS",
    "Action",
    "ChangePlan",
    "Decision",
    "FinishRetrain",
    "MoveAlias",
    "RaiseAlert",
    "Reconciliation",
    "RetrainRequest",
    "escalation",
    "plan_change",
    "promotion",
    "too_many_failures",
    "when",
]

DAY_MS = 86_400_000


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


def when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000))


def escalation(
    state: State, summary: str, evidence: dict[str, Any], *, pause: bool, problem: str = ""
) -> Decision:
    """Escalate to a person (an alert). ``problem`` names a lasting problem (e.g. broken
    columns): its repeats update one open alert instead of opening new ones."""
    evidence = {**evidence, "problem": problem}
    if pause:
        state.phase = "paused"
        state.paused_reason = summary
    return Decision("escalate", summary, state, evidence, (RaiseAlert(),))


def plan_change(
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


def too_many_failures(policy: Policy, state: State) -> bool:
    return state.failed_candidates >= policy.escalation.after_failed_candidates


def promotion(
    state: State,
    deployed: Deployment,
    candidate: int,
    metric: float,
    rows: int,
    summary: str,
    evidence: dict[str, Any],
    *,
    now_ms: int | None = None,
) -> Decision:
    """Promote ``candidate`` at ``now_ms`` (``metric`` on ``rows`` held-out rows becomes the
    baseline). Checks start again from the promotion: the first judges the new version alone,
    one whole window later (None: from the start of its last rollout step)."""
    previous = state.production
    evidence = {**evidence, "replaced": previous}
    made = state.rollout
    if made is None or made.refresh or made.since_ms is None:
        state.regime_start_ms, state.regime_rows = None, 0
    else:  # trained on the little data after a change: refresh once more data are in
        state.regime_start_ms, state.regime_rows = made.since_ms, int(made.rows)
    promoted_ms = now_ms if now_ms is not None or made is None else made.started_ms
    if promoted_ms is not None:
        state.last_check_ms = state.judged_until_ms = promoted_ms
    state.realised_checks, state.drop_evidence = 0, []
    state.phase, state.rollout, state.production = "watching", None, candidate
    state.baseline, state.baseline_source = metric, f"version {candidate} when promoted"
    state.baseline_rows = rows
    state.failed_candidates, state.drop_since_ms = 0, None
    state.alias = candidate
    return plan_change(
        state,
        deployed,
        TrafficPlan({candidate: 100}),
        "promote",
        f"{summary}: promoted; it takes all traffic (was version {previous}).",
        evidence,
    )
