"""Rollouts: the traffic plan of each step, and the guardrails that advance a candidate or roll
it back, judged on the live traffic each version answered since the step began: at every tick
(a sequential test that keeps its false-alarm rate however often it looks), and at the latest
when the step's time is up."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pandas as pd

from loopwise.autopilot.observe import live_frame, logged_losses
from loopwise.autopilot.policy import Policy, duration_ms
from loopwise.autopilot.scoring import compare_error_rates, compare_unpaired, prediction_shift
from loopwise.errors import LoopwiseError
from loopwise.outbound import fetch
from loopwise.store import TrafficPlan
from loopwise.store.prediction_segments import OUTPUT_PREFIX

__all__ = [
    "MIN_LOOK_ROWS",
    "Verdict",
    "boundary_z",
    "judge_step",
    "serving_counts",
    "step_duration_ms",
    "step_plan",
    "weigh_step",
]

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


MIN_LOOK_ROWS = 30
"""The fewest labelled predictions per version a step's metric is tested on (``min_samples``
if that is lower): on fewer, the normal approximation the tests rest on does not hold."""


def step_duration_ms(policy: Policy) -> int:
    """The longest a rollout step waits for evidence: ``rollout.max_step_duration``, or two
    ``monitor.window`` (one to serve the step, one for its labels to come in)."""
    given = policy.rollout.max_step_duration
    if given is not None:
        return duration_ms(given, "rollout.max_step_duration")
    return 2 * duration_ms(policy.monitor.window, "monitor.window")


def boundary_z(alpha: float, labelled: int, planned: int) -> float:
    """The z a look at ``labelled`` of ``planned`` rows per version must reach to decide a
    step early, for either verdict: ``z(1 - alpha/2) / sqrt(labelled / planned)``.

    On the scale of the running sum of evidence (a Brownian motion under the null) this is a
    constant line, and the chance that such a path ever crosses it, however often it is
    looked at, is ``2 (1 - Phi(z))`` = ``alpha`` (the reflection principle): looking at every
    tick keeps the stated false-alarm rate. Early looks need overwhelming evidence; at
    ``planned`` rows the boundary is little above the fixed test's."""
    fraction = min(1.0, labelled / planned)
    return NormalDist().inv_cdf(1.0 - alpha / 2.0) / math.sqrt(fraction)


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
    """The guardrails on traffic since ``started_ms`` (``weigh_step``), with the error rates
    the inference server counted since then."""
    live = live_frame(deployment, started_ms, now_ms)
    base = live[live["version"] == production]
    cand = live_frame(deployment, started_ms, now_ms, shadow=True) if shadow else live
    cand = cand[cand["version"] == candidate]
    evidence: dict[str, Any] = {}
    errors = _error_rate(policy, model, production, candidate, counts_at_start, evidence)
    return weigh_step(
        policy,
        metric,
        base,
        cand,
        elapsed_ms=now_ms - started_ms,
        expected_shift=expected_shift,
        breaches=errors,
        evidence=evidence,
    )


def weigh_step(
    policy: Policy,
    metric: str,
    base: pd.DataFrame,
    cand: pd.DataFrame,
    *,
    elapsed_ms: int,
    expected_shift: float = 0.0,
    breaches: list[str] | None = None,
    evidence: dict[str, Any] | None = None,
) -> Verdict:
    """The verdict on a step from the rows each version answered in it (``base``,
    ``cand``: logged predictions with their outcomes) after ``elapsed_ms``: the candidate's
    latency; while too few outcomes are in, the shift of its predictions from production's
    beyond the shift its gate measured on held-out rows (``expected_shift``); then its metric
    against production's, tested at every look (``boundary_z``).

    It rolls back on any breach (and ``breaches`` found elsewhere); it advances as soon as
    the candidate is shown no worse beyond ``max_metric_drop``, at ``min_samples`` labelled
    rows per version unless shown worse, or when the step's time is up
    (``step_duration_ms``): then on the evidence so far, the candidate having passed its
    gates on held-out labelled rows. Otherwise it waits."""
    rollout = policy.rollout
    found: list[str] = list(breaches or [])
    evidence = {**(evidence or {}), "rows": {"production": len(base), "candidate": len(cand)}}
    limit_ms = step_duration_ms(policy)
    timed_out = elapsed_ms >= limit_ms
    floor = min(MIN_LOOK_ROWS, rollout.min_samples)
    found += _latency(policy, cand, evidence)
    base_losses, cand_losses = logged_losses(base, metric), logged_losses(cand, metric)
    labelled = min(len(base_losses), len(cand_losses))
    # The shift is the early warning, before labels can say how the candidate does; once
    # they can, they decide (a retrained model is meant to answer differently).
    shift_rows = floor if timed_out else rollout.min_samples
    if min(len(base), len(cand)) >= shift_rows and labelled < rollout.min_samples:
        found += _shift(policy, base, cand, expected_shift, evidence)
    evidence["labelled"] = {"production": len(base_losses), "candidate": len(cand_losses)}
    no_worse = False
    if labelled >= floor:
        harm, no_worse = _compare(policy, metric, base_losses, cand_losses, labelled, evidence)
        found += harm
    if found:
        return Verdict("rollback", "; ".join(found), evidence)
    if labelled >= rollout.min_samples:
        return Verdict("advance", "no guardrail breached", evidence)
    if no_worse:
        return Verdict(
            "advance",
            f"{metric} shown no worse than that of production after {labelled} labelled "
            f"predictions per version (sequential test at alpha {rollout.alpha})",
            evidence,
        )
    if timed_out:
        evidence["timed_out"] = {"elapsed_ms": elapsed_ms, "limit_ms": limit_ms}
        return Verdict(
            "advance",
            f"the time bound of the step ran out ({_hours(limit_ms)}) with {labelled} labelled "
            "predictions per version and nothing against the candidate, which passed its "
            "gates: decided on the evidence so far",
            evidence,
        )
    return Verdict(
        "wait",
        f"{labelled} of {rollout.min_samples} labelled predictions per version so far",
        evidence,
    )


def _hours(ms: int) -> str:
    hours = ms / 3_600_000
    return f"{hours / 24:g} days" if hours >= 48 else f"{hours:g} hours"


def _latency(policy: Policy, cand: pd.DataFrame, evidence: dict[str, Any]) -> list[str]:
    limit = policy.rollout.max_latency_ms
    if limit is None or len(cand) < 20:
        return []
    p99 = float(np.percentile(cand["latency_ms"].to_numpy(dtype=np.float64), 99))
    evidence["latency_p99_ms"] = {"candidate": p99, "limit": limit}
    return [f"p99 latency {p99:.1f} ms over {limit} ms"] if p99 > limit else []


def _shift(
    policy: Policy,
    base: pd.DataFrame,
    cand: pd.DataFrame,
    expected: float,
    evidence: dict[str, Any],
) -> list[str]:
    limit = policy.rollout.max_prediction_shift
    column = OUTPUT_PREFIX + "predict"
    shift = prediction_shift(base[column].to_numpy(), cand[column].to_numpy())
    evidence["prediction_shift"] = {
        "psi": None if math.isnan(shift) else shift,
        "expected": expected,
        "limit": limit,
    }
    if not shift - expected > limit:
        return []
    return [
        f"the candidate's predictions moved from production's far more than in its gate "
        f"(PSI {shift:.3f} live, {expected:.3f} on held-out rows; at most {limit} more)"
    ]


def _compare(
    policy: Policy,
    metric: str,
    base_losses: npt.NDArray[Any],
    cand_losses: npt.NDArray[Any],
    labelled: int,
    evidence: dict[str, Any],
) -> tuple[list[str], bool]:
    """The candidate's metric against production's: a breach if shown worse beyond the
    margin, and whether it is shown no worse. Before ``min_samples`` rows either needs the
    sequential boundary; at ``min_samples``, the fixed one-sided test decides harm."""
    rollout = policy.rollout
    comparison = compare_unpaired(
        metric, base_losses, cand_losses, max_drop=rollout.max_metric_drop, alpha=rollout.alpha
    )
    evidence["metric"] = comparison.to_json()
    if labelled >= rollout.min_samples:
        harm, no_worse = not comparison.passed, False
    else:
        bound = boundary_z(rollout.alpha, labelled, rollout.min_samples)
        evidence["sequential"] = {"boundary_z": bound, "of_rows": rollout.min_samples}
        # z > 0: worse than the margin allows; -z: the evidence that it is no worse.
        harm, no_worse = comparison.z >= bound, -comparison.z >= bound
    if not harm:
        return [], no_worse
    return [
        f"{metric} {comparison.candidate:.4f} against production's {comparison.baseline:.4f}: "
        f"worse beyond the margin (p = {comparison.p_value:.3g})"
    ], False


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
