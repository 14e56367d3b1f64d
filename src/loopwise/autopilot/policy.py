"""An autopilot policy: what the controller watches, when it retrains, what a candidate must
prove, how it rolls out, and when it stops and calls a person.

A policy is one YAML document per deployment (docs/autopilot.md shows every key with its
default). ``parse_policy`` checks it whole, in one pass: unknown keys, values of the wrong type
or outside their bounds (every number has both), settings that contradict each other and a
pipeline that cannot be imported are all reported by one ``InvalidArgumentError``, whose
``parameter`` is the dotted path of the first (``gates.alpha``) and whose ``problems`` list each
(path, what came, what was expected, the sentence), so an invalid policy never replaces a
valid one and one edit can fix every problem.
The defaults are meant for any tabular classifier or regressor, not for one data stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any, ClassVar, TypeVar

import yaml

from loopwise.autopilot import policy_fields as F
from loopwise.autopilot.policy_fields import (
    MAX_KEY_CHARS,
    Problem,
    duration_ms,
    gathered,
    quoted,
    refusal_of,
)
from loopwise.autopilot.scoring import METRICS
from loopwise.errors import InvalidArgumentError, LoopwiseError
from loopwise.outbound import refusal
from loopwise.pipelines.refs import load_pipeline
from loopwise.store.checks import check_policy_text

__all__ = [
    "Escalation",
    "Gates",
    "Monitor",
    "Policy",
    "Retrain",
    "Rollout",
    "check_outbound",
    "duration_ms",
    "parse_policy",
]

STRATEGIES = ("canary", "blue-green", "shadow")
TRIGGERS = ("performance", "estimated_performance", "drift")

Checks = dict[str, Any]
"""Per setting of a section, the function that checks a value given its dotted path (or, for
a section inside it, the section's class)."""
S = TypeVar("S")


def _section(cls: type[S], doc: object, path: str, problems: list[Problem], **required: Any) -> S:
    """``cls`` built from mapping ``doc``: unknown keys refused, each value checked by the
    class's ``_checks`` (field name -> function of value and dotted path). Each problem is
    added to ``problems``; a setting refused keeps its default, so the rest is still judged."""
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        problems.append(_problem(path, type(doc).__name__, "a mapping of settings"))
        return cls(**required)
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    if True in doc and "on" in names:
        # YAML 1.1 reads an unquoted key ``on`` as the boolean true.
        doc = {("on" if k is True else k): v for k, v in doc.items()}
    for key in sorted(str(k) for k in doc if k not in names):
        where = f"{path}.{key[:MAX_KEY_CHARS]}" if path else key[:MAX_KEY_CHARS]
        problems.append(
            Problem(
                where,
                quoted(key),
                f"one of {names}",
                f"{where}: unknown setting {quoted(key)} in {path or 'the policy'}; the "
                f"settings there are {names}.",
            )
        )
    checks: Checks = cls.__dict__["_checks"]
    values: dict[str, Any] = {}
    for name in names:
        if name not in doc:
            continue
        where = f"{path}.{name}" if path else name
        before, check = len(problems), checks[name]
        if isinstance(check, type):  # a section: what it holds is judged setting by setting
            values[name] = _section(check, doc[name], where, problems)
            continue
        (value,) = gathered([partial(check, doc[name], where)], problems, where)
        if len(problems) == before:
            values[name] = value
    return cls(**(required | values))


def _problem(path: str, got: str, expected: str, hint: str = "") -> Problem:
    message = f"{path}: expected {expected}, got {got}." + (f" {hint}" if hint else "")
    return Problem(path or "policy", got, expected, message)


# -- the sections ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Monitor:
    """What each check of the deployment's recent traffic measures and what counts as a drop."""

    window: str = "7D"
    """How much recent traffic one check judges."""
    min_labelled: int = 200
    """Labelled predictions needed before realised performance counts."""
    max_drop: float = 0.02
    """A drop of the metric from production's baseline by more than this share of it (0.02:
    2%), significantly so at ``alpha``, triggers retraining."""
    alpha: float = 0.05
    """Significance level of the one-sided test that the metric dropped by more than
    ``max_drop`` (a larger drop than that, beyond noise)."""
    minimum: float | None = None
    """The lowest acceptable value of the metric: a retrained model below it is escalated."""
    drift_share: float = 0.5
    """A share of drifted input columns at or above this is recorded as drift."""
    validation: bool = True
    """Served inputs must pass the training data's validation suite: a window that fails it is
    escalated and quarantined (never trained on). Skew and drift are recorded as evidence."""

    _checks: ClassVar[Checks] = {
        "window": F.duration,
        "min_labelled": lambda v, p: F.count(v, p, 1),
        "max_drop": lambda v, p: F.share(v, p),
        "alpha": lambda v, p: F.number(v, p, 0.0, 0.5, open_low=True),
        "minimum": F.optional(lambda v, p: F.number(v, p, -1e12, 1e12)),
        "drift_share": lambda v, p: F.number(v, p, 0.0, 1.0, open_low=True),
        "validation": F.flag,
    }


@dataclass(frozen=True)
class Retrain:
    """When and how a candidate is trained."""

    pipeline: str = ""
    """The pipeline (``file.py:name`` or ``package.module:name``) that trains a candidate."""
    on: tuple[str, ...] = ("performance", "estimated_performance")
    """What triggers retraining: a realised or estimated drop, or drift alone."""
    data_param: str = "data"
    """The pipeline parameter that receives the training dataset's ref (``name/version``)."""
    params: dict[str, Any] = field(default_factory=dict)
    """Further fixed parameters of the pipeline."""
    candidate_step: str = "register"
    """The step whose output is the candidate model version."""
    window: str = "90D"
    """The most recent labelled traffic to train on (shortened to what followed a drop)."""
    min_rows: int = 1000
    """Fewest labelled rows to train on; fewer and the retrain waits."""
    holdout_fraction: float = 0.2
    """The latest share of that data, kept out of training to judge the candidate on."""
    cooldown: str = "1D"
    """Least time between two retrains."""
    refresh_factor: float = 3.0
    """A model retrained right after a change learnt from little data: once the labelled
    traffic since that change reaches this many times what it was trained on, retrain once
    more (gated as usual). 0: never."""
    max_per_day: int = 3
    """Budget: most retrains in any 24 hours."""

    _checks: ClassVar[Checks] = {
        "pipeline": F.pipeline,
        "on": F.triggers(TRIGGERS),
        "data_param": F.text,
        "params": F.params,
        "candidate_step": F.text,
        "window": F.duration,
        "min_rows": lambda v, p: F.count(v, p, 10),
        "holdout_fraction": lambda v, p: F.number(v, p, 0.0, 0.9, open_low=True),
        "cooldown": F.duration,
        "refresh_factor": lambda v, p: F.number(v, p, 0.0, 1000.0),
        "max_per_day": lambda v, p: F.count(v, p, 1, 1000),
    }


@dataclass(frozen=True)
class Gates:
    """What a candidate must show before it takes any traffic."""

    min_improvement: float = 0.0
    """On recent labelled data it was not trained on, the candidate must beat production by
    more than this, significantly (a one-sided paired test at ``alpha``)."""
    alpha: float = 0.05
    slice_minimums: dict[str, float] = field(default_factory=dict)
    """Per slice column, the lowest value of the metric any of its slices may have."""
    min_slice_rows: int = 100
    """Slices with fewer labelled rows are not judged."""
    latency_ms: float | None = None
    """Budget for the candidate's median single-row prediction time."""
    validate_data: bool = True
    """The training data must pass production's training-data validation suite."""

    _checks: ClassVar[Checks] = {
        "min_improvement": lambda v, p: F.share(v, p),
        "alpha": lambda v, p: F.number(v, p, 0.0, 0.5, open_low=True),
        "slice_minimums": F.metric_map,
        "min_slice_rows": lambda v, p: F.count(v, p, 1),
        "latency_ms": F.optional(lambda v, p: F.number(v, p, 0.0, 1e9, open_low=True)),
        "validate_data": F.flag,
    }


@dataclass(frozen=True)
class Rollout:
    """How a candidate that passed its gates takes traffic, and what rolls it back."""

    strategy: str = "canary"
    """``canary`` (steps), ``blue-green`` (all at once) or ``shadow`` (a copy, then all)."""
    steps: tuple[int, ...] = (5, 25, 100)
    """The candidate's share at each canary step, in percent."""
    min_samples: int = 200
    """Labelled predictions per version that decide a step at the latest. A step is judged
    at every tick (a group-sequential test, whose boundary is strictest early on): it
    advances as soon as the candidate is shown no worse than production beyond
    ``max_metric_drop`` at ``alpha``, and at ``min_samples`` unless it is shown worse."""
    max_metric_drop: float = 0.01
    """Rollback when the candidate is worse than the baseline by more than this (one-sided
    test at ``alpha``)."""
    alpha: float = 0.05
    max_prediction_shift: float = 0.2
    """Rollback when the distance between the candidate's and production's live predictions
    (population stability index) exceeds the distance measured at the gate by more than this."""
    max_latency_ms: float | None = None
    """Rollback when the candidate's 99th percentile latency exceeds this."""
    metrics_url: str | None = None
    """The inference server's Prometheus ``/metrics`` (``loopwise serve``): with it, a
    candidate whose share of failed requests (HTTP 5xx) rises beyond production's by more than
    ``max_error_rate_increase`` is rolled back."""
    max_error_rate_increase: float = 0.01
    max_step_duration: str | None = None
    """The longest a rollout step may wait for evidence; None: two ``monitor.window`` (a
    check window to serve the step and one for its labels to come in). A step whose time is up
    is decided on the evidence so far: rolled back if its guardrails show harm, else advanced
    (the candidate has passed its gates on held-out labelled rows). At least one
    ``monitor.window``."""
    alias: str | None = None
    """A registry alias of the model (e.g. ``production``) moved to each promoted version;
    None: the deployment's plan alone says what serves."""

    _checks: ClassVar[Checks] = {
        "strategy": F.choice(STRATEGIES),
        "steps": F.steps,
        "min_samples": lambda v, p: F.count(v, p, 1),
        "max_metric_drop": lambda v, p: F.share(v, p),
        "alpha": lambda v, p: F.number(v, p, 0.0, 0.5, open_low=True),
        "max_prediction_shift": lambda v, p: F.number(v, p, 0.0, 10.0, open_low=True),
        "max_latency_ms": F.optional(lambda v, p: F.number(v, p, 0.0, 1e9, open_low=True)),
        "metrics_url": F.optional(F.url),
        "max_error_rate_increase": lambda v, p: F.number(v, p, 0.0, 1.0),
        "max_step_duration": F.optional(F.duration),
        "alias": F.optional(F.alias),
    }


@dataclass(frozen=True)
class Escalation:
    """When the autopilot stops and calls a person."""

    after_failed_candidates: int = 2
    """Consecutive candidates that fail their gates or are rolled back before it pauses."""
    webhook: str | None = None
    """Posted an alert (JSON) on each escalation."""

    _checks: ClassVar[Checks] = {
        "after_failed_candidates": lambda v, p: F.count(v, p, 1, 100),
        "webhook": F.optional(F.url),
    }


@dataclass(frozen=True)
class Policy:
    """A deployment's whole autopilot policy (see the module docstring)."""

    label: str
    """The outcome's name: the column the pipeline trains on."""
    metric: str | None = None
    """The metric protected: accuracy, log_loss or brier for a classifier; rmse, mae or mape
    for a regressor. None: accuracy for class labels, rmse for numbers (from the outcomes)."""
    deployment: str | None = None
    """If given, the deployment the policy is for (checked when it is set)."""
    monitor: Monitor = field(default_factory=Monitor)
    retrain: Retrain = field(default_factory=Retrain)
    gates: Gates = field(default_factory=Gates)
    rollout: Rollout = field(default_factory=Rollout)
    escalation: Escalation = field(default_factory=Escalation)

    _checks: ClassVar[Checks] = {
        "label": F.text,
        "metric": F.optional(lambda v, p: _metric(v, p)),
        "deployment": F.optional(F.text),
        "monitor": Monitor,
        "retrain": Retrain,
        "gates": Gates,
        "rollout": Rollout,
        "escalation": Escalation,
    }

    @staticmethod
    def higher_is_better(metric: str) -> bool:
        """Whether a higher value of ``metric`` is better (accuracy) or worse (the losses)."""
        return metric == "accuracy"


def _metric(value: object, path: str) -> str:
    if isinstance(value, str) and value in METRICS:
        return value
    raise F.refused(
        path,
        f"one of {list(METRICS)} (the autopilot protects metrics that are means of per-row losses)",
        quoted(value),
    )


def _document(text: str) -> Mapping[Any, Any]:
    """The YAML mapping in ``text`` (refused at once when there is none: nothing else can be
    judged without it)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgumentError(
            f"Expected a policy as YAML text, got {quoted(text)}.", parameter="policy"
        )
    try:
        check_policy_text(text)  # bounded, aliases expanded, before YAML builds it
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(exc.message, parameter="policy") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgumentError(
            f"The policy is not valid YAML: {str(exc)[: F.MAX_QUOTED_CHARS * 2]}",
            parameter="policy",
        ) from None
    if not isinstance(doc, Mapping):
        raise InvalidArgumentError(
            f"Expected the policy to be a YAML mapping (label: ..., retrain: ...), got "
            f"{type(doc).__name__}.",
            parameter="policy",
        )
    return doc


def parse_policy(text: str, *, check_pipeline: bool = True) -> Policy:
    """The policy in YAML ``text``, checked whole in one pass (see the module docstring).

    ``check_pipeline``: import ``retrain.pipeline`` and check that it takes ``data_param`` and
    the fixed ``params``.
    """
    doc = _document(text)
    problems: list[Problem] = []
    if "label" not in doc:
        problems.append(
            Problem(
                "label",
                "nothing",
                "the outcome's name",
                "label: missing; name the outcome the model predicts (the column the retraining "
                "pipeline learns), e.g. 'label: employed'.",
            )
        )
    policy = _section(Policy, doc, "", problems, label="")
    if not policy.retrain.pipeline and not _touched(problems, "retrain.pipeline"):
        problems.append(
            Problem(
                "retrain.pipeline",
                "nothing",
                "a pipeline as 'file.py:name' or 'package.module:name'",
                "retrain.pipeline: missing; name the pipeline that trains a candidate, e.g. "
                "'pipeline: train.py:training' or 'pipeline: mypkg.flows:training'.",
            )
        )
    problems += contradictions(policy, skip=problems)
    if check_pipeline and not _touched(problems, "retrain"):
        gathered([lambda: _check_pipeline(policy.retrain)], problems, "retrain.pipeline")
    if problems:
        raise refusal_of(problems)
    return policy


def _touched(problems: Sequence[Problem], *paths: str) -> bool:
    """Whether any problem concerns one of ``paths``, a setting inside one, or the section
    holding one (a refused section keeps its defaults, which must not be judged)."""
    for problem in problems:
        for path in paths:
            if problem.path == path or problem.path.startswith(path + "."):
                return True
            if path.startswith(problem.path + ".") or problem.path.startswith(path + "["):
                return True
    return False


def check_outbound(policy: Policy) -> None:
    """Refuse a policy whose URLs name an address this process would never fetch (loopback,
    private, link-local …; ``loopwise.outbound``) unless the operator allows the host. Checked
    where a policy is set; names are resolved, and checked again, only when fetched."""
    for path, url in (
        ("rollout.metrics_url", policy.rollout.metrics_url),
        ("escalation.webhook", policy.escalation.webhook),
    ):
        problem = "" if url is None else refusal(url, path)
        if problem:
            raise InvalidArgumentError(f"{path}: {problem}", parameter=path)


def contradictions(policy: Policy, skip: Sequence[Problem] = ()) -> list[Problem]:
    """The settings of ``policy`` that contradict each other or their metric, each saying
    which and how to fix it; those touching a setting already in ``skip`` are not judged."""
    found: list[Problem] = []
    for paths, check in _CONTRADICTIONS:
        if not _touched(skip, *paths):
            found += check(policy)
    return found


def _metric_bounds(policy: Policy) -> list[Problem]:
    bounds = (0.0, 1.0) if policy.metric == "accuracy" else (0.0, math.inf)
    if policy.metric is None:
        return []
    found = []
    where_value = [("monitor.minimum", policy.monitor.minimum)]
    where_value += [
        (f"gates.slice_minimums.{column[:MAX_KEY_CHARS]}", floor)
        for column, floor in policy.gates.slice_minimums.items()
    ]
    for where, value in where_value:
        if value is not None and not bounds[0] <= value <= bounds[1]:
            found.append(
                _problem(
                    where,
                    quoted(value),
                    f"a value in [{bounds[0]}, {bounds[1]}], where {policy.metric} lies",
                    "Outside it, the floor can never (or always) be met.",
                )
            )
    return found


def _canary_steps(policy: Policy) -> list[Problem]:
    if policy.rollout.strategy != "canary" or len(policy.rollout.steps) >= 2:
        return []
    return [
        _problem(
            "rollout.steps",
            quoted(list(policy.rollout.steps)),
            "at least one step below 100 for a canary",
            "Use strategy: blue-green to switch at once.",
        )
    ]


def _step_duration(policy: Policy) -> list[Problem]:
    given = policy.rollout.max_step_duration
    window = policy.monitor.window
    if given is None or duration_ms(given, "") >= duration_ms(window, ""):
        return []
    return [
        _problem(
            "rollout.max_step_duration",
            quoted(given),
            f"at least monitor.window ({window})",
            "A step is judged on labelled traffic, which the autopilot looks at once per check "
            "window: a shorter step runs out before its labels can say anything. Raise it, or "
            "leave it out (two check windows).",
        )
    ]


def _latency_budgets(policy: Policy) -> list[Problem]:
    live, gate = policy.rollout.max_latency_ms, policy.gates.latency_ms
    if live is None or gate is None or live >= gate:
        return []
    return [
        _problem(
            "rollout.max_latency_ms",
            quoted(live),
            f"at least gates.latency_ms ({gate})",
            "The rollout limits the 99th percentile, the gate the median, and a 99th percentile "
            "is never below the median: a candidate the gate lets through with a median between "
            "the two is always rolled back. Raise rollout.max_latency_ms or lower "
            "gates.latency_ms.",
        )
    ]


MIN_HELD_OUT_ROWS = 10
"""The fewest held-out rows a retrain at ``retrain.min_rows`` may leave its gates (times
``retrain.holdout_fraction``): the gate's paired z-test on fewer rests on nothing."""


def _held_out_rows(policy: Policy) -> list[Problem]:
    retrain = policy.retrain
    held_out = round(retrain.min_rows * retrain.holdout_fraction)
    if held_out >= MIN_HELD_OUT_ROWS:
        return []
    return [
        _problem(
            "retrain.min_rows",
            quoted(retrain.min_rows),
            f"enough rows that holdout_fraction ({retrain.holdout_fraction}) of them leaves "
            f"the gates at least {MIN_HELD_OUT_ROWS} held-out rows (it leaves {held_out})",
            f"Raise retrain.min_rows to at least "
            f"{math.ceil(MIN_HELD_OUT_ROWS / retrain.holdout_fraction)} or "
            "retrain.holdout_fraction.",
        )
    ]


_CONTRADICTIONS: list[tuple[tuple[str, ...], Callable[[Policy], list[Problem]]]] = [
    (("metric", "monitor.minimum", "gates.slice_minimums"), _metric_bounds),
    (("rollout.strategy", "rollout.steps"), _canary_steps),
    (("rollout.max_step_duration", "monitor.window"), _step_duration),
    (("rollout.max_latency_ms", "gates.latency_ms"), _latency_budgets),
    (("retrain.min_rows", "retrain.holdout_fraction"), _held_out_rows),
]
"""Each check of settings against each other, with the settings it reads."""


def _check_pipeline(retrain: Retrain) -> None:
    try:
        found = load_pipeline(retrain.pipeline)
    except LoopwiseError as exc:
        raise InvalidArgumentError(
            f"retrain.pipeline: {exc.message}", parameter="retrain.pipeline"
        ) from None
    accepted = found.params
    for name in (retrain.data_param, *retrain.params):
        if name not in accepted:
            where = "retrain.data_param" if name == retrain.data_param else f"retrain.params.{name}"
            raise F.refused(
                where,
                f"a parameter of pipeline {quoted(retrain.pipeline)}: one of {sorted(accepted)}",
                quoted(name),
            )
