"""The autopilot's decisions, apart from their effects: pure functions from what a tick
observed (the policy, the state, a check window, a gate's or a guardrail's verdict, the clock)
to the decision to record and the actions that follow it.

Nothing here reads or writes anything. The controller gathers the facts, calls a ``decide_*``
function, records the decision it returns (claiming the next number) and only then applies
its actions, in order. Where a fact is needed on one path only (when the drop began, the
server's counters as a step starts), the decision is taken in two calls, so that the
controller fetches no more than it needs. ``decision`` holds what a decision is;
``reconcile``, ``check``, ``candidate`` and ``rollout`` the decisions of each stage of a tick.
"""

from loopwise.autopilot.decide.candidate import (
    decide_gates,
    decide_pipeline_failed,
    decide_pipeline_refused,
    decide_retrain,
    decide_rollout_start,
)
from loopwise.autopilot.decide.check import (
    BASELINE_ROWS,
    DROP_CHECKS,
    Assessment,
    assess_check,
    check_start_ms,
    decide_check,
    drop_test,
    labelled_since_ms,
    refresh_due,
    retrain_blocked,
    retrain_when_rows_arrive,
)
from loopwise.autopilot.decide.decision import (
    DAY_MS,
    Action,
    ChangePlan,
    Decision,
    FinishRetrain,
    MoveAlias,
    RaiseAlert,
    Reconciliation,
    RetrainRequest,
)
from loopwise.autopilot.decide.reconcile import decide_reconcile
from loopwise.autopilot.decide.rollout import decide_rollout_step, next_step

__all__ = [
    "BASELINE_ROWS",
    "DAY_MS",
    "DROP_CHECKS",
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
    "drop_test",
    "labelled_since_ms",
    "next_step",
    "refresh_due",
    "retrain_blocked",
    "retrain_when_rows_arrive",
]
