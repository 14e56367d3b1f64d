"""Rollouts: the traffic plan of each step, and the guardrails that advance a candidate or roll
it back, judged on the live traffic each version answered since the step began."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from loopwise.autopilot.observe import live_frame, logged_losses
from loopwise.autopilot.policy import Policy
from loopwise.autopilot.scoring import compare_error_rates, compare_unpaired, prediction_shift
from loopwise.errors import LoopwiseError
from loopwise.outbound import fetch
from loopwise.store import TrafficPlan
from loopwise.store.prediction_segments import OUTPUT_PREFIX

__all__ = ["Verdict", "judge_step", "serving_counts", "step_plan"]

Counts = dict[str, list[int]]
"""Per version (as text): ``[failed requests (HTTP 5xx), all requests]`` so far."""


def serving_counts(url: str, model: str, timeout_s: float = 5.0) -> Counts:
    """The requests an inference server has answered for ``model``, per version, from its
    Prometheus ``/metrics`` (``loopwise_requests_total``): failed (5xx) and all.

    The URL is a policy's: it is fetched only where ``loopwise.outbound`` allows it, and what
    it answers is parsed, never repeated (an error says what was wrong, not what came)."""
    # prometheus-client comes with the [server] extra: only a policy with metrics_url needs it.
    from prometheus_client.parser import text_string_to_metric_families

    response = fetch("GET", url, timeout_s=timeout_s, parameter="rollout.metrics_url")
    response.raise_for_status()
    try:
        families = list(text_string_to_metric_families(response.text))
    except Exception:
        raise ValueError("the answer is not Prometheus text") from None
    counts: Counts = {}
    for family in families:
        if family.name != "loopwise_requests":
            continue
        for sample in family.samples:
            labels = sample.labels
            if not sample.name.endswith("_total") or labels.get("model") != model:
                continue
            found = counts.setdefault(labels.get("version", ""), [0, 0])
            found[1] += int(sample.value)
            if labels.get("status", "").startswith("5"):
                found[0] += int(sample.value)
    return counts


def counts_now(policy: Policy, model: str) -> tuple[Counts | None, str]:
    """``serving_counts`` from the policy's ``rollout.metrics_url`` (None without one, or
    when the server cannot be read: then the reason, which never quotes its answer)."""
    url = policy.rollout.metrics_url
    if url is None:
        return None, ""
    shown = url if len(url) <= 200 else url[:200] + "…"
    try:
        return serving_counts(url, model), ""
    except LoopwiseError as exc:  # refused: not an address the operator allows
        return None, exc.message
    except httpx.HTTPStatusError as exc:
        return None, f"{shown} could not be read (HTTP {exc.response.status_code})"
    except Exception as exc:  # a monitoring outage must not stop the controller
        return None, f"{shown} could not be read ({type(exc).__name__}: {str(exc)[:200]})"


def _since(now: Counts, start: Counts, version: int) -> tuple[int, int]:
    errors, total = now.get(str(version), [0, 0])
    errors0, total0 = start.get(str(version), [0, 0])
    return max(errors - errors0, 0), max(total - total0, 0)


def step_plan(policy: Policy, production: int, candidate: int, step: int) -> TrafficPlan:
    """The plan of rollout step ``step``: for a shadow rollout step 0 is production with the
    candidate as a shadow; otherwise the candidate takes ``steps[step]`` percent."""
    rollout = policy.rollout
    if rollout.strategy == "shadow" and step == 0:
        return TrafficPlan({production: 100}, shadow=[candidate])
    share = _shares(policy)[step]
    if share >= 100:
        return TrafficPlan({candidate: 100})
    return TrafficPlan({production: 100 - share, candidate: share})


def _shares(policy: Policy) -> list[int]:
    rollout = policy.rollout
    if rollout.strategy == "blue-green":
        return [100]
    if rollout.strategy == "shadow":
        return [0, 100]
    return list(rollout.steps)


def last_step(policy: Policy) -> int:
    return len(_shares(policy)) - 1


@dataclass
class Verdict:
    """What the guardrails say about a rollout step: wait, advance or roll back, and why."""

    action: str  # "wait", "advance" or "rollback"
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


def judge_step(
    policy: Policy,
    deployment: str,
    metric: str,
    production: int,
    candidate: int,
    started_ms: int,
    now_ms: int,
    shadow: bool,
    *,
    expected_shift: float = 0.0,
    model: str = "",
    counts_at_start: Counts | None = None,
) -> Verdict:
    """The guardrails on traffic since ``started_ms``: the candidate's latency; while too few
    outcomes are in, the shift of its predictions from production's beyond the shift its gate
    measured on held-out rows (``expected_shift``); then its metric against production's."""
    rollout = policy.rollout
    live = live_frame(deployment, started_ms, now_ms)
    base = live[live["version"] == production]
    cand = live_frame(deployment, started_ms, now_ms, shadow=True) if shadow else live
    cand = cand[cand["version"] == candidate]
    evidence: dict[str, Any] = {"rows": {"production": len(base), "candidate": len(cand)}}
    breaches: list[str] = []
    if rollout.max_latency_ms is not None and len(cand) >= 20:
        p99 = float(np.percentile(cand["latency_ms"].to_numpy(dtype=np.float64), 99))
        evidence["latency_p99_ms"] = {"candidate": p99, "limit": rollout.max_latency_ms}
        if p99 > rollout.max_latency_ms:
            breaches.append(f"p99 latency {p99:.1f} ms over {rollout.max_latency_ms} ms")
    base_losses, cand_losses = logged_losses(base, metric), logged_losses(cand, metric)
    labelled = min(len(base_losses), len(cand_losses))
    # The shift is the early warning, before labels can say how the candidate does; once
    # they can, they decide (a retrained model is meant to answer differently).
    if min(len(base), len(cand)) >= rollout.min_samples and labelled < rollout.min_samples:
        column = OUTPUT_PREFIX + "predict"
        shift = prediction_shift(base[column].to_numpy(), cand[column].to_numpy())
        evidence["prediction_shift"] = {
            "psi": None if math.isnan(shift) else shift,
            "expected": expected_shift,
            "limit": rollout.max_prediction_shift,
        }
        if shift - expected_shift > rollout.max_prediction_shift:
            breaches.append(
                f"the candidate's predictions moved from production's far more than in its "
                f"gate (PSI {shift:.3f} live, {expected_shift:.3f} on held-out rows; at most "
                f"{rollout.max_prediction_shift} more)"
            )
    evidence["labelled"] = {"production": len(base_losses), "candidate": len(cand_losses)}
    if labelled >= rollout.min_samples:
        comparison = compare_unpaired(
            metric,
            base_losses,
            cand_losses,
            max_drop=rollout.max_metric_drop,
            alpha=rollout.alpha,
        )
        evidence["metric"] = comparison.to_json()
        if not comparison.passed:
            breaches.append(
                f"{metric} {comparison.candidate:.4f} against production's "
                f"{comparison.baseline:.4f}: worse beyond the margin (p = "
                f"{comparison.p_value:.3g})"
            )
    breaches += _error_rate(policy, model, production, candidate, counts_at_start, evidence)
    if breaches:
        return Verdict("rollback", "; ".join(breaches), evidence)
    if labelled < rollout.min_samples:
        return Verdict(
            "wait",
            f"{labelled} of {rollout.min_samples} labelled predictions per version so far",
            evidence,
        )
    return Verdict("advance", "no guardrail breached", evidence)


def _error_rate(
    policy: Policy,
    model: str,
    production: int,
    candidate: int,
    at_start: Counts | None,
    evidence: dict[str, Any],
) -> list[str]:
    """The error-rate guardrail, from the inference server's counters since the step began."""
    now, problem = counts_now(policy, model)
    if problem:
        evidence["errors"] = {"unavailable": problem}
    if now is None or at_start is None:
        return []
    base, cand = _since(now, at_start, production), _since(now, at_start, candidate)
    if cand[1] < policy.rollout.min_samples:
        evidence["errors"] = {"requests": {"production": base[1], "candidate": cand[1]}}
        return []
    found = compare_error_rates(
        base, cand, max_increase=policy.rollout.max_error_rate_increase, alpha=policy.rollout.alpha
    )
    evidence["errors"] = found
    if found["passed"]:
        return []
    return [
        f"the candidate failed {found['candidate']['rate']:.1%} of its requests against "
        f"production's {found['baseline']['rate']:.1%} (p = {found['p_value']:.3g})"
    ]
