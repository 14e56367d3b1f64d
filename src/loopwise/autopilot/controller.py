"""The controller: one tick of the autopilot for one deployment.

A tick reads the policy and the latest decision's state, makes the deployment agree with what
that state expects, then does at most one step of work: judge the rollout in progress, or, once
per check window, judge production's recent traffic and retrain, gate and start a rollout when
it has dropped. Every step is a decision in the store (``record_autopilot_decision``: numbered,
so that two controllers cannot both act on one state) recorded *before* its side effect, with
the evidence; a controller killed anywhere and run again finishes what was announced and never
does it twice (changes of plan carry the revision they expect; retraining reruns a cached
pipeline; alerts are keyed by the decision).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from loopwise.autopilot.observe import infer_metric, live_frame, logged_losses, observe
from loopwise.autopilot.policy import Policy, duration_ms, parse_policy
from loopwise.autopilot.retraining import gate, run_pipeline, training_data
from loopwise.autopilot.rollout import counts_now, judge_step, last_step, step_plan
from loopwise.autopilot.scoring import change_point
from loopwise.autopilot.settings import OperatorSettings, check_pipeline_allowed
from loopwise.autopilot.state import State
from loopwise.context import current, using
from loopwise.errors import ConflictError, LoopwiseError, PermissionDeniedError
from loopwise.store import AutopilotDecision, Deployment, Store, TrafficPlan

__all__ = ["Tick", "checkpoint", "run_once"]

log = logging.getLogger(__name__)
DAY_MS = 86_400_000
BASELINE_ROWS = 20_000
"""The most labelled rows the running baseline remembers (older checks fade out)."""


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000))


def checkpoint(stage: str) -> None:
    """Called between a decision and its side effect; tests replace it to kill the controller
    at each stage (``LOOPWISE_AUTOPILOT_KILL_AT`` does the same in a real process)."""
    import os

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
        self.observed_rows = 0
        self.refreshing = False

    # -- recording ------------------------------------------------------------------------------
    def record(self, kind: str, summary: str, evidence: dict[str, Any] | None = None) -> None:
        decision = self.store.record_autopilot_decision(
            self.project,
            self.name,
            self.seq + 1,
            kind,
            summary,
            self.state.to_json(),
            {"policy_revision": self.policy_revision, **(evidence or {})},
            self.now_ms,
        )
        self.seq = decision.seq
        self.last = decision
        self.tick.decisions.append(decision)

    def deployment(self) -> Deployment:
        return self.store.get_deployment(self.project, self.name)

    def change_plan(
        self, plan: TrafficPlan, kind: str, summary: str, evidence: dict[str, Any]
    ) -> None:
        """Announce a new plan (with the revision it will have), then set it."""
        current_deployment = self.deployment()
        revision = current_deployment.revision
        same = current_deployment.plan == plan
        self.state.expect = {"plan": plan.to_json(), "revision": revision if same else revision + 1}
        self.record(kind, summary, evidence)
        checkpoint(f"{kind}:before-plan")
        self._apply(plan, revision)

    def _apply(self, plan: TrafficPlan, from_revision: int) -> None:
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

    def escalate(
        self, summary: str, evidence: dict[str, Any], *, pause: bool, problem: str = ""
    ) -> None:
        """Record an escalation and alert a person. ``problem`` names a lasting problem (e.g.
        broken columns): its repeats update one open alert instead of opening new ones."""
        evidence = {**evidence, "problem": problem}
        if pause:
            self.state.phase = "paused"
            self.state.paused_reason = summary
        self.record("escalate", summary, evidence)
        checkpoint("escalate:before-alert")
        self._alert()

    def _alert(self) -> None:
        """Open the alert of the latest (escalate) decision, once, and post it to the webhook."""
        from loopwise.monitoring.alerts import raise_alert, send_webhook

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
        if not self._reconcile():
            return self.tick
        if self.state.pending_retrain is not None:
            self._finish_retrain()
        elif self.state.phase == "rollout":
            self._judge_rollout()
        else:
            if self.state.awaiting_rows and self.state.phase == "watching":
                # A retrain waits for rows since the drop: try at every tick, not per window.
                if not self._retrain_blocked():
                    since = _when(self.state.drop_since_ms)
                    self._retrain(
                        f"Enough labelled rows since the drop began ({since})", {}, quiet=True
                    )
                if self.tick.decisions:
                    return self.tick
            window = duration_ms(self.policy.monitor.window, "monitor.window")
            last = self.state.last_check_ms
            if last is None or self.now_ms - last >= window:
                self._check(self.now_ms - window)  # may find the drop gone: no retrain then
        return self.tick

    def _reconcile(self) -> bool:
        """Make the deployment agree with the state; False when the tick must stop here."""
        deployment = self.deployment()
        if self.last is None:
            shares = deployment.plan.shares
            if len(shares) != 1 or deployment.plan.shadow:
                self.state.phase = "paused"
                self.state.paused_reason = (
                    "the plan splits traffic; the autopilot starts from one version"
                )
                self.record(
                    "hold",
                    f"Not started: {deployment.name} follows plan {deployment.plan.spec}; the "
                    "autopilot starts from a plan that sends all traffic to one version.",
                )
                return False
            self.state.production = next(iter(shares))
            self.state.expect = {"plan": deployment.plan.to_json(), "revision": deployment.revision}
            self.state.last_check_ms = self.now_ms  # the first check judges a whole window
            self.record(
                "start",
                f"Watching {deployment.name}: version {self.state.production} "
                f"takes all traffic (revision {deployment.revision}).",
            )
            return True
        if self.last.kind == "escalate":
            self._alert()
        expect = self.state.expect
        if expect is None:
            return True
        plan = TrafficPlan.from_json(expect["plan"])
        if deployment.revision == expect["revision"] and deployment.plan == plan:
            if self.state.alias is not None:
                self._move_alias()
            return True
        if deployment.revision == expect["revision"] - 1:
            # Announced, then interrupted: finish it; that was the interrupted tick's last act.
            self._apply(plan, deployment.revision)
            return False
        # Someone else changed the plan: follow them, and stop acting on a rollout.
        shares = deployment.plan.shares
        summary = f"The plan was changed outside the autopilot (revision {deployment.revision}: {deployment.plan.spec})"
        self.state.expect = {"plan": deployment.plan.to_json(), "revision": deployment.revision}
        self.state.rollout = None
        self.state.pending_retrain = None
        if len(shares) == 1 and not deployment.plan.shadow:
            self.state.phase = "watching" if self.state.phase != "paused" else "paused"
            self.state.production = next(iter(shares))
            self.state.baseline, self.state.baseline_source = None, ""
            self.record("adopt", f"{summary}; version {self.state.production} is production now.")
        else:
            self.state.phase = "paused"
            self.state.paused_reason = summary
            self.record("hold", f"{summary}; paused until `loopwise autopilot resume {self.name}`.")
        return False

    # -- checking production -------------------------------------------------------------------
    def _check(self, start_ms: int) -> None:
        policy, state = self.policy, self.state
        frame = live_frame(self.name, start_ms, self.now_ms)
        frame = frame[frame["version"] == state.production].reset_index(drop=True)
        if frame.empty:
            return
        if state.metric is None:
            state.metric = policy.metric or infer_metric(frame["outcome"])
        metric = state.metric
        seen = observe(
            self.name,
            start_ms,
            self.now_ms,
            metric=metric,
            label=policy.label,
            min_labelled=policy.monitor.min_labelled,
            frame=frame,
            allow_pickle=self.settings.allow_pickle,
        )
        window = duration_ms(policy.monitor.window, "monitor.window")
        last = state.last_check_ms
        # Checks keep their cadence from the start (each judges one whole window), however
        # late in its period a tick comes.
        state.last_check_ms = (
            self.now_ms if last is None else last + (self.now_ms - last) // window * window
        )
        evidence: dict[str, Any] = {"check": seen.to_json(), "metric": metric}
        first = state.baseline is None and seen.realised is not None
        if first:
            state.baseline, state.baseline_source = (
                seen.realised,
                "the first check with enough labels",
            )
            state.baseline_rows = seen.labelled
        evidence["baseline"] = {
            "value": state.baseline,
            "rows": state.baseline_rows,
            "source": state.baseline_source,
        }
        if policy.monitor.validation and seen.invalid:
            state.quarantine.append([start_ms, self.now_ms])
            skewed = (
                f"; skewed against the training data: {', '.join(seen.skewed)}"
                if seen.skewed
                else ""
            )
            self.escalate(
                f"Served inputs break the training data's validation suite in this window "
                f"({'; '.join(seen.findings[:3])}{skewed}). Its traffic is quarantined: no "
                "retraining on it, nothing promoted.",
                evidence,
                pause=False,
                problem="invalid-inputs:" + ",".join(seen.invalid),
            )
            return
        self.observed_rows = seen.labelled
        drop = self._drop(seen.realised, seen.realised_se, seen.estimated, metric)
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
                self._update_baseline(seen.realised, seen.labelled)
            if self._refresh(drop["summary"], evidence):
                return
            self.record(
                "observe", f"{drift_note.capitalize()}{drop['summary']}: no action.", evidence
            )
            return
        if state.drop_since_ms is None:
            state.drop_since_ms = self._change_start(start_ms, metric)
            evidence["change_point_ms"] = state.drop_since_ms
        if state.phase == "paused":
            self.record(
                "hold",
                f"{drift_note.capitalize()}{drop['summary']}; paused "
                f"({state.paused_reason}), so no retraining until resumed.",
                evidence,
            )
            return
        wait = self._retrain_blocked()
        if wait:
            self.record("hold", f"{drop['summary']}; {wait}.", evidence)
            return
        self._retrain(f"{drift_note.capitalize()}{drop['summary']}", evidence)

    def _refresh(self, summary: str, evidence: dict[str, Any]) -> bool:
        """Retrain once more after a change, when its data have grown ``refresh_factor``
        times over what the production model learnt from (see ``Retrain.refresh_factor``)."""
        state, factor = self.state, self.policy.retrain.refresh_factor
        if state.regime_start_ms is None or factor <= 0 or state.phase != "watching":
            return False
        if self._retrain_blocked():
            return False
        frame = live_frame(self.name, state.regime_start_ms, self.now_ms)
        rows = int(frame["outcome"].notna().sum()) if len(frame) else 0
        if rows < factor * max(state.regime_rows, 1):
            return False
        state.drop_since_ms = state.regime_start_ms
        state.regime_start_ms = None  # one refresh per change
        self.refreshing = True
        self._retrain(
            f"{summary}; {rows:,} labelled rows since the change began, {rows / max(state.regime_rows, 1):.1f} "
            f"times what version {state.production} learnt from (retrain.refresh_factor)",
            evidence,
        )
        return True

    def _update_baseline(self, value: float, rows: int) -> None:
        """Fold a healthy check into the baseline (a running mean over the latest rows)."""
        state = self.state
        assert state.baseline is not None
        kept = min(state.baseline_rows, BASELINE_ROWS)
        state.baseline = (state.baseline * kept + value * rows) / (kept + rows)
        state.baseline_rows = kept + rows

    def _drop(
        self, realised: float | None, se: float | None, estimated: float | None, metric: str
    ) -> dict[str, Any]:
        """Has the metric dropped from the baseline by more than ``monitor.max_drop`` (relative)?
        A one-sided z-test at ``monitor.alpha`` of "worse by more than the allowed drop", with
        the uncertainty of the window and of the baseline, so that noise does not retrain."""
        policy, state = self.policy, self.state
        higher = policy.higher_is_better(metric)
        value, source = realised, "realised"
        if value is None and "estimated_performance" in policy.retrain.on:
            value, source, se = estimated, "estimated", None
        if value is None or state.baseline is None:
            return {"triggered": False, "summary": f"{metric} not measurable yet (too few labels)"}
        allowed = policy.monitor.max_drop * abs(state.baseline)
        fall = (state.baseline - value) if higher else (value - state.baseline)
        if metric == "rmse" and se is not None:
            se = se / (2 * max(value, 1e-12))  # the delta method: from the MSE to its root
        if se:
            # The baseline is an estimate too, from baseline_rows labelled rows.
            rows = max(self.observed_rows, 1)
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

    def _change_start(self, start_ms: int, metric: str) -> int:
        """When the drop began: the change point of the labelled traffic's per-row losses
        over this check window and the one before (``scoring.change_point``)."""
        window = duration_ms(self.policy.monitor.window, "monitor.window")
        frame = live_frame(self.name, start_ms - window, self.now_ms)
        frame = frame[frame["outcome"].notna()].sort_values("timestamp_ms", kind="stable")
        losses = logged_losses(frame, metric)
        if not len(losses):
            return start_ms
        return int(frame["timestamp_ms"].iloc[change_point(losses)])

    def _retrain_blocked(self) -> str:
        retrain, state = self.policy.retrain, self.state
        cooldown = duration_ms(retrain.cooldown, "retrain.cooldown")
        if state.retrains_ms and self.now_ms - state.retrains_ms[-1] < cooldown:
            return f"the last retrain was under {retrain.cooldown} ago (retrain.cooldown)"
        if state.retrains_since(self.now_ms - DAY_MS) >= retrain.max_per_day:
            return f"{retrain.max_per_day} retrains in the last day already (retrain.max_per_day)"
        return ""

    # -- retraining and gating -----------------------------------------------------------------
    def _retrain(self, why: str, evidence: dict[str, Any], *, quiet: bool = False) -> None:
        """Retrain, gate and start a rollout; without enough rows since the drop, wait (a
        'hold' decision, unless ``quiet``: a tick that only looks again records nothing)."""
        try:
            check_pipeline_allowed(self.policy.retrain.pipeline, self.settings)
        except PermissionDeniedError as exc:
            # Nothing is imported, logged or counted; each check escalates again (one open
            # alert) until the operator allows the pipeline or the policy names another.
            self.escalate(
                f"{why}; not retrained: {exc.message}",
                evidence,
                pause=False,
                problem="pipeline-not-allowed",
            )
            return
        model = self.deployment().model
        data = training_data(self.name, self.policy, self.state, self.now_ms, model)
        if data is None:
            if not quiet:
                self.state.awaiting_rows = True
                since = self.state.drop_since_ms
                self.record(
                    "hold",
                    f"{why}; fewer than {self.policy.retrain.min_rows} labelled rows since the "
                    f"change (estimated at {_when(since)}) to retrain on yet (retrain.min_rows): "
                    "waiting for more.",
                    evidence,
                )
            return
        self.state.awaiting_rows = False
        evidence["data"] = {"rows": data.rows, "start_ms": data.start_ms, "end_ms": data.end_ms}
        if data.invalid:
            self.state.failed_candidates += 1
            self.escalate(
                f"{why}; retraining refused: the recent labelled data break production's "
                f"training-data suite ({'; '.join(data.invalid[:3])}).",
                {**evidence, "invalid": data.invalid},
                pause=self._too_many_failures(),
            )
            return
        assert data.train is not None and data.holdout is not None
        evidence["data"] |= {"train": data.train.ref, "holdout": data.holdout.ref}
        self.state.retrains_ms = [t for t in self.state.retrains_ms if t >= self.now_ms - DAY_MS]
        self.state.retrains_ms.append(self.now_ms)
        self.state.pending_retrain = {
            "train": data.train.ref,
            "holdout": data.holdout.ref,
            "since_ms": self.state.drop_since_ms,
            "rows": data.rows,
            "refresh": self.refreshing,
        }
        self.record(
            "retrain",
            f"{why}: retraining {self.policy.retrain.pipeline} on {data.rows:,} labelled rows.",
            evidence,
        )
        checkpoint("retrain:before-pipeline")
        self._finish_retrain()

    def _too_many_failures(self) -> bool:
        return self.state.failed_candidates >= self.policy.escalation.after_failed_candidates

    def _finish_retrain(self) -> None:
        state, policy = self.state, self.policy
        pending = state.pending_retrain
        assert pending is not None and state.production is not None and state.metric is not None
        model = self.deployment().model
        try:
            candidate, run_id = run_pipeline(policy, pending["train"], self.settings)
        except LoopwiseError as exc:
            state.pending_retrain = None
            state.failed_candidates += 1
            self.escalate(
                f"The retraining pipeline failed: {exc.message}",
                {"error": exc.to_dict()["error"]},
                pause=self._too_many_failures(),
            )
            return
        checkpoint("retrain:after-pipeline")
        result = gate(
            policy,
            state.metric,
            model,
            state.production,
            candidate.version,
            pending["holdout"],
            allow_pickle=self.settings.allow_pickle,
        )
        evidence = {"candidate": candidate.version, "pipeline_run": run_id, "gates": result.checks}
        state.pending_retrain = None
        minimum = result.checks.get("minimum")
        if minimum is not None and not minimum["met"]:
            state.failed_candidates += 1
            self.escalate(
                f"Retrained version {candidate.version} reaches only {state.metric} "
                f"{result.candidate_metric:.4f} on recent data, below the acceptable "
                f"{minimum['minimum']}: retraining does not restore the model; paused.",
                evidence,
                pause=True,
            )
            return
        if not result.passed:
            summary = f"Version {candidate.version} failed its gates: {'; '.join(result.failed)}."
            if pending.get(
                "refresh"
            ):  # production is fine; a refresh that does not help is no failure
                self.record(
                    "reject", summary + " Production stays (a refresh, not a repair).", evidence
                )
                return
            state.failed_candidates += 1
            if self._too_many_failures():
                self.escalate(
                    f"{summary} {state.failed_candidates} candidates in a row failed; paused.",
                    evidence,
                    pause=True,
                )
            else:
                self.record("reject", summary + " Production stays.", evidence)
            return
        state.phase = "rollout"
        state.rollout = {
            "candidate": candidate.version,
            "step": 0,
            "started_ms": self.now_ms,
            "gate_metric": result.candidate_metric,
            "gate_rows": result.rows,
            "expected_shift": result.checks["prediction_shift"],
            "counts_at_start": counts_now(policy, model)[0],
            "since_ms": pending.get("since_ms"),
            "rows": pending.get("rows", 0),
            "refresh": pending.get("refresh", False),
        }
        plan = step_plan(policy, state.production, candidate.version, 0)
        summary = (
            f"Version {candidate.version} passed its gates ({state.metric} "
            f"{result.candidate_metric:.4f} vs production's {result.production_metric:.4f} "
            f"on the held-out latest traffic)"
        )
        if last_step(policy) == 0:
            self._promote(
                candidate.version, result.candidate_metric, result.rows, summary, evidence
            )
            return
        self.change_plan(
            plan,
            "rollout",
            f"{summary}: {policy.rollout.strategy} step 1, plan "
            f"{plan.spec}{' with a shadow' if plan.shadow else ''}.",
            evidence,
        )

    # -- rollouts ------------------------------------------------------------------------------
    def _judge_rollout(self) -> None:
        state, policy = self.state, self.policy
        rollout = state.rollout
        assert rollout is not None and state.production is not None and state.metric is not None
        shadow = policy.rollout.strategy == "shadow" and rollout["step"] == 0
        verdict = judge_step(
            policy,
            self.name,
            state.metric,
            state.production,
            rollout["candidate"],
            rollout["started_ms"],
            self.now_ms,
            shadow,
            expected_shift=rollout.get("expected_shift") or 0.0,
            model=self.deployment().model,
            counts_at_start=rollout.get("counts_at_start"),
        )
        candidate = rollout["candidate"]
        if verdict.action == "wait":
            return
        evidence = {"candidate": candidate, "step": rollout["step"], **verdict.evidence}
        if verdict.action == "rollback":
            state.phase, state.rollout = "watching", None
            state.failed_candidates += 1
            summary = f"Rolled back version {candidate}: {verdict.reason}."
            self.change_plan(TrafficPlan({state.production: 100}), "rollback", summary, evidence)
            if self._too_many_failures():
                self.escalate(
                    f"{state.failed_candidates} candidates in a row failed; paused.",
                    evidence,
                    pause=True,
                )
            return
        step = rollout["step"] + 1
        if step >= last_step(policy):
            # The baseline is what the gate measured on held-out rows: the canary's own
            # figure rests on a small share of traffic.
            self._promote(
                candidate,
                rollout["gate_metric"],
                rollout.get("gate_rows", 0),
                f"Version {candidate} held up at step {step} ({verdict.reason})",
                evidence,
            )
            return
        counts = counts_now(policy, self.deployment().model)[0]
        rollout.update(step=step, started_ms=self.now_ms, counts_at_start=counts)
        plan = step_plan(policy, state.production, candidate, step)
        self.change_plan(
            plan,
            "rollout",
            f"Version {candidate} held up ({verdict.reason}): step {step + 1}, plan {plan.spec}.",
            evidence,
        )

    def _promote(
        self, candidate: int, metric: float, rows: int, summary: str, evidence: dict[str, Any]
    ) -> None:
        state = self.state
        previous = state.production
        evidence = {**evidence, "replaced": previous}
        made = state.rollout or {}
        if made.get("refresh") or made.get("since_ms") is None:
            state.regime_start_ms, state.regime_rows = None, 0
        else:  # trained on the little data after a change: refresh once more data are in
            state.regime_start_ms, state.regime_rows = made["since_ms"], int(made["rows"])
        state.phase, state.rollout, state.production = "watching", None, candidate
        state.baseline, state.baseline_source = metric, f"version {candidate} when promoted"
        state.baseline_rows = rows
        state.failed_candidates, state.drop_since_ms = 0, None
        state.alias = candidate
        self.change_plan(
            TrafficPlan({candidate: 100}),
            "promote",
            f"{summary}: promoted; it takes all traffic (was version {previous}).",
            evidence,
        )


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
