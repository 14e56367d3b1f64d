"""The controller: one tick of the autopilot for one deployment.

A tick reads the policy and the latest decision's state, makes the deployment agree with what
that state expects, then does at most one step of work: judge the rollout in progress, or, once
per check window, judge production's recent traffic and retrain, gate and start a rollout when
it has dropped. Every step is a decision in the store (``record_autopilot_decision``: numbered,
so that two controllers cannot both act on one state) recorded *before* its side effect, with
the evidence; a controller killed anywhere and run again finishes what was announced and never
does it twice (changes of plan carry the revision they expect; retraining reruns a cached
pipeline; alerts are keyed by the decision).

What to decide is ``decide``'s (pure functions of the facts); this module gathers the facts,
records each decision and applies its actions.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from loopwise.autopilot.decide import (
    Action,
    ChangePlan,
    Decision,
    FinishRetrain,
    MoveAlias,
    RaiseAlert,
    RetrainRequest,
    assess_check,
    check_start_ms,
    decide_check,
    decide_gates,
    decide_pipeline_failed,
    decide_pipeline_refused,
    decide_reconcile,
    decide_retrain,
    decide_rollout_start,
    decide_rollout_step,
    labelled_since_ms,
    next_step,
    refresh_due,
    retrain_when_rows_arrive,
)
from loopwise.autopilot.observe import infer_metric, live_frame, logged_losses, observe
from loopwise.autopilot.policy import Policy, duration_ms, parse_policy
from loopwise.autopilot.retraining import gate, run_pipeline, training_data
from loopwise.autopilot.rollout import counts_now, judge_step
from loopwise.autopilot.scoring import change_point
from loopwise.autopilot.settings import OperatorSettings, check_pipeline_allowed
from loopwise.autopilot.state import State
from loopwise.context import current, using
from loopwise.errors import ConflictError, LoopwiseError, PermissionDeniedError
from loopwise.monitoring.alerts import raise_alert, send_webhook
from loopwise.store import AutopilotDecision, Deployment, Store, TrafficPlan

__all__ = ["Tick", "checkpoint", "run_once"]

log = logging.getLogger(__name__)


def checkpoint(stage: str) -> None:
    """Called between a decision and its side effect; tests replace it to kill the controller
    at each stage (``LOOPWISE_AUTOPILOT_KILL_AT`` does the same in a real process)."""
    if os.environ.get("LOOPWISE_AUTOPILOT_KILL_AT") == stage:
        os._exit(137)


@dataclass
class Tick:
    """What one tick did: the decisions it recorded (oldest first)."""

    deployment: str
    now_ms: int
    decisions: list[AutopilotDecision] = field(default_factory=list)


class _Controller:
    def __init__(
        self, store: Store, project: str, deployment: str, now_ms: int, settings: OperatorSettings
    ) -> None:
        self.store, self.project, self.name, self.now_ms = store, project, deployment, now_ms
        self.settings = settings
        record = store.get_autopilot_policy(project, deployment)
        self.policy: Policy = parse_policy(record.text, check_pipeline=False)
        self.policy_revision = record.revision
        latest = store.latest_autopilot_decision(project, deployment)
        self.seq = latest.seq if latest else 0
        self.last = latest
        self.state = State.from_json(latest.state) if latest else State()
        self.tick = Tick(deployment, now_ms)

    # -- recording and applying ---------------------------------------------------------------
    def commit(self, decision: Decision) -> None:
        """Record ``decision`` (the next number: ConflictError when another controller took
        it), then apply its actions, each after its checkpoint."""
        recorded = self.store.record_autopilot_decision(
            self.project,
            self.name,
            self.seq + 1,
            decision.kind,
            decision.summary,
            decision.state.to_json(),
            {"policy_revision": self.policy_revision, **decision.evidence},
            self.now_ms,
        )
        self.state = decision.state
        self.seq = recorded.seq
        self.last = recorded
        self.tick.decisions.append(recorded)
        for action in decision.actions:
            checkpoint(f"{decision.kind}:{action.stage}")
            self.perform(action)

    def perform(self, action: Action) -> None:
        if isinstance(action, ChangePlan):
            self._set_plan(action.plan, action.from_revision)
        elif isinstance(action, RaiseAlert):
            self._alert()
        elif isinstance(action, FinishRetrain):
            self._finish_retrain()
        elif isinstance(action, MoveAlias):
            self._move_alias()

    def deployment(self) -> Deployment:
        return self.store.get_deployment(self.project, self.name)

    def _set_plan(self, plan: TrafficPlan, from_revision: int) -> None:
        self.store.set_deployment_plan(
            self.project,
            self.name,
            plan,
            f"autopilot decision #{self.seq}: {self.last.summary if self.last else ''}"[:2000],
            expected_revision=from_revision,
        )
        if self.state.alias is not None:
            self._move_alias()

    def _move_alias(self) -> None:
        """Point ``rollout.alias`` at the promoted version (if the policy names one)."""
        name = self.policy.rollout.alias
        if name is None or self.state.alias is None:
            return
        model = self.deployment().model
        try:
            if self.store.resolve_alias(self.project, model, name) == self.state.alias:
                return
        except LoopwiseError:
            pass
        self.store.set_alias(self.project, model, name, self.state.alias)

    def _alert(self) -> None:
        """Open the alert of the latest (escalate) decision, once, and post it to the webhook."""
        assert self.last is not None
        problem = self.last.evidence.get("problem") or f"decision-{self.last.seq}"
        fingerprint = f"autopilot:{self.name}:{problem}"
        known = self.store.list_alerts(self.project, deployment=self.name, status=None, limit=1000)
        if any(
            a.fingerprint == fingerprint and (a.details or {}).get("decision") == self.last.seq
            for a in known
        ):
            return  # raised before this controller was interrupted
        alert, created = raise_alert(
            "autopilot",
            fingerprint=fingerprint,
            message=f"Autopilot of {self.name}: {self.last.summary}",
            severity="critical",
            deployment=self.name,
            details={"decision": self.last.seq, **self.last.evidence},
            window_end_ms=self.now_ms,
        )
        webhook = self.policy.escalation.webhook
        if created and webhook:
            send_webhook(webhook, alert)

    # -- the tick -----------------------------------------------------------------------------
    def run(self) -> Tick:
        start = decide_reconcile(
            self.state, self.deployment(), self.last.kind if self.last else None, self.now_ms
        )
        for action in start.actions:  # what earlier ticks announced: no checkpoint
            self.perform(action)
        if start.decision is not None:
            self.commit(start.decision)
        if not start.proceed:
            return self.tick
        state = self.state
        if state.pending_retrain is not None:
            self._finish_retrain()
        elif state.phase == "rollout":
            self._judge_rollout()
        else:
            if state.awaiting_rows and state.phase == "watching":
                # A retrain waits for rows since the drop: try at every tick, not per window.
                request = retrain_when_rows_arrive(self.policy, state, self.now_ms)
                if request is not None:
                    self._retrain(request, quiet=True)
                if self.tick.decisions:
                    return self.tick
            start_ms = check_start_ms(self.policy, self.state, self.now_ms)
            if start_ms is not None:
                self._check(start_ms)  # may find the drop gone: no retrain then
        return self.tick

    # -- checking production -------------------------------------------------------------------
    def _check(self, start_ms: int) -> None:
        """Judge production's traffic: the inputs it was served in this check window, and
        the labelled rows served since those the checks before judged (late labels count)."""
        policy, state = self.policy, self.state
        since_ms = labelled_since_ms(policy, state, start_ms, self.now_ms)
        served = live_frame(self.name, min(since_ms, start_ms), self.now_ms)
        served = served[served["version"] == state.production]
        stamps = served["timestamp_ms"]
        frame = served[stamps >= start_ms].reset_index(drop=True)
        labelled = served[(stamps >= since_ms) & served["outcome"].notna()]
        if frame.empty:  # no traffic in the window: its labels wait for the next check
            return
        metric = state.metric or policy.metric or infer_metric(served["outcome"])
        seen = observe(
            self.name,
            start_ms,
            self.now_ms,
            metric=metric,
            label=policy.label,
            min_labelled=policy.monitor.min_labelled,
            frame=frame,
            allow_pickle=self.settings.allow_pickle,
            labelled=labelled.reset_index(drop=True),
            labelled_from_ms=since_ms,
        )
        judged = assess_check(
            policy, state, seen, metric=metric, start_ms=start_ms, now_ms=self.now_ms
        )
        change_start_ms = rows_since_change = None
        if judged.decision is None and judged.triggered and judged.state.drop_since_ms is None:
            pooled = [int(entry[0]) for entry in judged.state.drop_evidence]
            change_start_ms = self._change_start(min([since_ms, start_ms, *pooled]), metric)
        regime_start = judged.state.regime_start_ms
        healthy = judged.decision is None and not judged.triggered
        healthy = healthy and judged.drop.get("source") == "realised"
        if healthy and regime_start is not None and refresh_due(policy, judged.state, self.now_ms):
            rows_since_change = self._labelled_since(regime_start)
        outcome = decide_check(
            policy,
            judged,
            now_ms=self.now_ms,
            change_start_ms=change_start_ms,
            rows_since_change=rows_since_change,
        )
        if isinstance(outcome, RetrainRequest):
            self._retrain(outcome)
        else:
            self.commit(outcome)

    def _change_start(self, start_ms: int, metric: str) -> int:
        """When the drop began: the change point of the labelled traffic's per-row losses
        since ``start_ms`` (the earliest rows pooled as evidence of the drop) and over the
        check window before (``scoring.change_point``)."""
        window = duration_ms(self.policy.monitor.window, "monitor.window")
        frame = live_frame(self.name, start_ms - window, self.now_ms)
        frame = frame[frame["outcome"].notna()].sort_values("timestamp_ms", kind="stable")
        losses = logged_losses(frame, metric)
        if not len(losses):
            return start_ms
        return int(frame["timestamp_ms"].iloc[change_point(losses)])

    def _labelled_since(self, start_ms: int) -> int:
        frame = live_frame(self.name, start_ms, self.now_ms)
        return int(frame["outcome"].notna().sum()) if len(frame) else 0

    # -- retraining and gating -----------------------------------------------------------------
    def _retrain(self, request: RetrainRequest, *, quiet: bool = False) -> None:
        """Retrain, gate and start a rollout; without enough rows since the drop, wait (a
        'hold' decision, unless ``quiet``: a tick that only looks again records nothing)."""
        try:
            check_pipeline_allowed(self.policy.retrain.pipeline, self.settings)
        except PermissionDeniedError as exc:
            self.commit(decide_pipeline_refused(request, exc.message))
            return
        model = self.deployment().model
        data = training_data(self.name, self.policy, request.state, self.now_ms, model)
        decision = decide_retrain(self.policy, request, data, now_ms=self.now_ms, quiet=quiet)
        if decision is not None:
            self.commit(decision)  # then FinishRetrain: run the pipeline, gate, roll out

    def _finish_retrain(self) -> None:
        state, policy = self.state, self.policy
        pending = state.pending_retrain
        assert pending is not None and state.production is not None and state.metric is not None
        model = self.deployment().model
        try:
            candidate, run_id = run_pipeline(
                policy, pending.train, self.settings, holdout_ref=pending.holdout
            )
        except LoopwiseError as exc:
            self.commit(decide_pipeline_failed(policy, state, exc.message, exc.to_dict()["error"]))
            return
        checkpoint("retrain:after-pipeline")
        result = gate(
            policy,
            state.metric,
            model,
            state.production,
            candidate.version,
            pending.holdout,
            allow_pickle=self.settings.allow_pickle,
        )
        stopped = decide_gates(policy, state, candidate.version, run_id, result)
        if stopped is not None:
            self.commit(stopped)
            return
        counts = counts_now(policy, model)[0]
        started = decide_rollout_start(
            policy,
            state,
            candidate.version,
            run_id,
            result,
            deployed=self.deployment(),
            counts_at_start=counts,
            now_ms=self.now_ms,
        )
        self.commit(started)

    # -- rollouts ------------------------------------------------------------------------------
    def _judge_rollout(self) -> None:
        state, policy = self.state, self.policy
        rollout = state.rollout
        assert rollout is not None and state.production is not None and state.metric is not None
        shadow = policy.rollout.strategy == "shadow" and rollout.step == 0
        verdict = judge_step(
            policy,
            self.name,
            state.metric,
            state.production,
            rollout.candidate,
            rollout.started_ms,
            self.now_ms,
            shadow,
            expected_shift=rollout.expected_shift or 0.0,
            model=self.deployment().model,
            counts_at_start=rollout.counts_at_start,
        )
        if verdict.action == "wait":
            return
        counts = None
        if next_step(policy, rollout, verdict) is not None:
            counts = counts_now(policy, self.deployment().model)[0]
        decisions = decide_rollout_step(
            policy,
            state,
            verdict,
            deployed=self.deployment(),
            now_ms=self.now_ms,
            counts_now=counts,
        )
        for decision in decisions:
            self.commit(decision)


def run_once(
    deployment: str,
    *,
    now_ms: int | None = None,
    store: Store | None = None,
    project: str | None = None,
    settings: OperatorSettings | None = None,
) -> Tick:
    """One tick of ``deployment``'s autopilot at ``now_ms`` (default: now); see the module
    docstring. ConflictError when another controller recorded a decision meanwhile.

    ``settings``: what the operator allows (the pipelines it may run, pickle);
    default ``OperatorSettings.from_env()``. A policy alone never allows a pipeline."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    allowed = OperatorSettings.from_env() if settings is None else settings
    try:
        if store is None or project is None:
            ctx = current()
            store, project = store or ctx.store, project or ctx.project
        # The monitors read the current context: make it the store and project ticked.
        with using(store, project):
            return _Controller(store, project, deployment, now, allowed).run()
    except ConflictError:
        log.info("autopilot of %s: another controller acted first; this tick stops", deployment)
        raise
