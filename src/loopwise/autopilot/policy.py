"""An autopilot policy: what the controller watches, when it retrains, what a candidate must
prove, how it rolls out, and when it stops and calls a person.

A policy is one YAML document per deployment (docs/autopilot.md shows every key with its
default). ``parse_policy`` checks it whole: an unknown key, a value of the wrong type or range,
or a pipeline that cannot be imported is an ``InvalidArgumentError`` whose ``parameter`` is the
dotted path of the field (``gates.alpha``), so an invalid policy never replaces a valid one.
The defaults are meant for any tabular classifier or regressor, not for one data stream.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

import yaml

from loopwise.autopilot.scoring import METRICS
from loopwise.errors import InvalidArgumentError, LoopwiseError
from loopwise.outbound import parse_url, refusal
from loopwise.pipelines.refs import load_pipeline
from loopwise.store.checks import check_name, check_policy_text

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

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d|D|w|W)\s*$")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "min": 60_000, "h": 3_600_000}
_UNIT_MS |= {"d": 86_400_000, "D": 86_400_000, "w": 604_800_000, "W": 604_800_000}
STRATEGIES = ("canary", "blue-green", "shadow")
TRIGGERS = ("performance", "estimated_performance", "drift")


MAX_QUOTED_CHARS = 200
"""The most of a value an error message quotes (a policy's values are anyone's input)."""
MAX_KEY_CHARS = 100


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 60, 60


def _quoted(value: object) -> str:
    """``repr(value)``, cut to ``MAX_QUOTED_CHARS`` (the cut is marked)."""
    if isinstance(value, str | int | float | bool | None):
        shown = repr(value[: MAX_QUOTED_CHARS + 1] if isinstance(value, str) else value)
    elif isinstance(value, list | tuple | dict | set):
        shown = _SHORT.repr(value)
    else:
        shown = f"a {type(value).__name__}"
    return shown if len(shown) <= MAX_QUOTED_CHARS else shown[:MAX_QUOTED_CHARS] + "…"


def duration_ms(value: object, path: str) -> int:
    """``"30D"``, ``"12h"``, ``"90m"`` or a number of seconds, in milliseconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return int(value * 1000)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise InvalidArgumentError(
            f"{path}: expected a positive duration such as '30D', '12h', '90m' or a number of "
            f"seconds, got {_quoted(value)}.",
            parameter=path,
        )
    return int(float(match.group(1)) * _UNIT_MS[match.group(2)])


# -- field checks: each names the dotted path of what it checks -------------------------------


def _number(value: object, path: str, low: float, high: float, *, open_low: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (value > low if open_low else value >= low) and value <= high:  # type: ignore[operator]
        return float(value)  # type: ignore[arg-type]
    bound = f"({low}, {high}]" if open_low else f"[{low}, {high}]"
    raise InvalidArgumentError(
        f"{path}: expected a number in {bound}, got {_quoted(value)}.", parameter=path
    )


def _count(value: object, path: str, low: int = 1, high: int = 10**9) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    raise InvalidArgumentError(
        f"{path}: expected a whole number from {low} to {high}, got {_quoted(value)}.",
        parameter=path,
    )


def _text(value: object, path: str) -> str:
    if isinstance(value, str) and value.strip():
        return value
    raise InvalidArgumentError(
        f"{path}: expected a non-empty string, got {_quoted(value)}.", parameter=path
    )


def _flag(value: object, path: str) -> bool:
    if isinstance(value, bool):
        return value
    raise InvalidArgumentError(
        f"{path}: expected true or false, got {_quoted(value)}.", parameter=path
    )


def _optional(check: Callable[..., Any]) -> Callable[..., Any]:
    def checked(value: object, path: str, *args: Any, **kwargs: Any) -> Any:
        return None if value is None else check(value, path, *args, **kwargs)

    return checked


S = TypeVar("S")
Checks = dict[str, Callable[[Any, str], Any]]
"""Per setting of a section, the function that checks a value given its dotted path."""


def _section(cls: type[S], doc: object, path: str) -> S:
    """``cls`` built from mapping ``doc``: unknown keys refused, each value checked by the
    class's ``_checks`` (field name -> function of value and dotted path)."""
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise InvalidArgumentError(
            f"{path}: expected a mapping of settings, got {type(doc).__name__}.", parameter=path
        )
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    if True in doc and "on" in names:
        # YAML 1.1 reads an unquoted key ``on`` as the boolean true.
        doc = {("on" if k is True else k): v for k, v in doc.items()}
    unknown = sorted(str(k) for k in doc if k not in names)
    if unknown:
        where = f"{path}.{unknown[0][:MAX_KEY_CHARS]}" if path else unknown[0][:MAX_KEY_CHARS]
        raise InvalidArgumentError(
            f"{where}: unknown setting{'s' if len(unknown) > 1 else ''} {_quoted(unknown)} in "
            f"{path or 'the policy'}; the settings there are {names}.",
            parameter=where,
        )
    checks: Checks = cls.__dict__["_checks"]
    values = {
        name: checks[name](doc[name], f"{path}.{name}" if path else name)
        for name in names
        if name in doc
    }
    return cls(**values)


def _metric_map(value: object, path: str) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(
            f"{path}: expected a mapping of slice column to the lowest acceptable value, e.g. "
            f"{{SEX: 0.7}}, got {_quoted(value)}.",
            parameter=path,
        )
    return {
        _text(k, path): _number(v, f"{path}.{str(k)[:MAX_KEY_CHARS]}", -1e12, 1e12)
        for k, v in value.items()
    }


def _steps(value: object, path: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidArgumentError(
            f"{path}: expected a list of candidate shares in percent ending at 100, e.g. "
            f"[5, 25, 100], got {_quoted(value)}.",
            parameter=path,
        )
    steps = tuple(_count(v, f"{path}[{i}]", 1, 100) for i, v in enumerate(value))
    if list(steps) != sorted(set(steps)) or steps[-1] != 100:
        raise InvalidArgumentError(
            f"{path}: expected increasing shares in percent ending at 100, got {_quoted(list(steps))}.",
            parameter=path,
        )
    return steps


def _triggers(value: object, path: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(v in TRIGGERS for v in value):
        raise InvalidArgumentError(
            f"{path}: expected a list drawn from {list(TRIGGERS)}, got {_quoted(value)}.",
            parameter=path,
        )
    return tuple(value)


def _choice(options: tuple[str, ...]) -> Callable[[object, str], str]:
    def check(value: object, path: str) -> str:
        if value in options:
            return str(value)
        raise InvalidArgumentError(
            f"{path}: expected one of {list(options)}, got {_quoted(value)}.", parameter=path
        )

    return check


def _params(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidArgumentError(
            f"{path}: expected a mapping of pipeline parameter names to values, got {_quoted(value)}.",
            parameter=path,
        )
    return dict(value)


def _alias(value: object, path: str) -> str:
    text = _text(value, path)
    try:
        check_name(text, path)
    except LoopwiseError as exc:
        raise InvalidArgumentError(exc.message, parameter=path) from None
    return text


MAX_PIPELINE_CHARS = 1000


def _pipeline(value: object, path: str) -> str:
    text = _text(value, path)
    if len(text) > MAX_PIPELINE_CHARS:
        raise InvalidArgumentError(
            f"{path}: expected a pipeline as 'file.py:name' or 'package.module:name' of at most "
            f"{MAX_PIPELINE_CHARS} characters, got {_quoted(text)}.",
            parameter=path,
        )
    return text


def _url(value: object, path: str) -> str:
    text = _text(value, path)
    if not text.startswith(("http://", "https://")):
        raise InvalidArgumentError(
            f"{path}: expected an http(s) URL, got {_quoted(value)}.", parameter=path
        )
    try:
        parse_url(text, path)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"{path}: {exc.message}", parameter=path) from None
    return text


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
        "window": lambda v, p: (duration_ms(v, p), v)[1],
        "min_labelled": lambda v, p: _count(v, p, 1),
        "max_drop": lambda v, p: _number(v, p, 0.0, 1e12),
        "alpha": lambda v, p: _number(v, p, 0.0, 0.5, open_low=True),
        "minimum": _optional(lambda v, p: _number(v, p, -1e12, 1e12)),
        "drift_share": lambda v, p: _number(v, p, 0.0, 1.0, open_low=True),
        "validation": _flag,
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
        "pipeline": lambda v, p: _pipeline(v, p),
        "on": _triggers,
        "data_param": _text,
        "params": _params,
        "candidate_step": _text,
        "window": lambda v, p: (duration_ms(v, p), v)[1],
        "min_rows": lambda v, p: _count(v, p, 10),
        "holdout_fraction": lambda v, p: _number(v, p, 0.0, 0.9, open_low=True),
        "cooldown": lambda v, p: (duration_ms(v, p), v)[1],
        "refresh_factor": lambda v, p: _number(v, p, 0.0, 1000.0),
        "max_per_day": lambda v, p: _count(v, p, 1, 1000),
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
        "min_improvement": lambda v, p: _number(v, p, 0.0, 1e12),
        "alpha": lambda v, p: _number(v, p, 0.0, 0.5, open_low=True),
        "slice_minimums": _metric_map,
        "min_slice_rows": lambda v, p: _count(v, p, 1),
        "latency_ms": _optional(lambda v, p: _number(v, p, 0.0, 1e9, open_low=True)),
        "validate_data": _flag,
    }


@dataclass(frozen=True)
class Rollout:
    """How a candidate that passed its gates takes traffic, and what rolls it back."""

    strategy: str = "canary"
    """``canary`` (steps), ``blue-green`` (all at once) or ``shadow`` (a copy, then all)."""
    steps: tuple[int, ...] = (5, 25, 100)
    """The candidate's share at each canary step, in percent."""
    min_samples: int = 200
    """Labelled predictions per version before a step can advance."""
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
    alias: str | None = None
    """A registry alias of the model (e.g. ``production``) moved to each promoted version;
    None: the deployment's plan alone says what serves."""

    _checks: ClassVar[Checks] = {
        "strategy": _choice(STRATEGIES),
        "steps": _steps,
        "min_samples": lambda v, p: _count(v, p, 1),
        "max_metric_drop": lambda v, p: _number(v, p, 0.0, 1e12),
        "alpha": lambda v, p: _number(v, p, 0.0, 0.5, open_low=True),
        "max_prediction_shift": lambda v, p: _number(v, p, 0.0, 1e6, open_low=True),
        "max_latency_ms": _optional(lambda v, p: _number(v, p, 0.0, 1e9, open_low=True)),
        "metrics_url": _optional(_url),
        "max_error_rate_increase": lambda v, p: _number(v, p, 0.0, 1.0),
        "alias": _optional(_alias),
    }


@dataclass(frozen=True)
class Escalation:
    """When the autopilot stops and calls a person."""

    after_failed_candidates: int = 2
    """Consecutive candidates that fail their gates or are rolled back before it pauses."""
    webhook: str | None = None
    """Posted an alert (JSON) on each escalation."""

    _checks: ClassVar[Checks] = {
        "after_failed_candidates": lambda v, p: _count(v, p, 1, 100),
        "webhook": _optional(_url),
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
        "label": _text,
        "metric": _optional(lambda v, p: _metric(v, p)),
        "deployment": _optional(_text),
        "monitor": lambda v, p: _section(Monitor, v, p),
        "retrain": lambda v, p: _section(Retrain, v, p),
        "gates": lambda v, p: _section(Gates, v, p),
        "rollout": lambda v, p: _section(Rollout, v, p),
        "escalation": lambda v, p: _section(Escalation, v, p),
    }

    @staticmethod
    def higher_is_better(metric: str) -> bool:
        """Whether a higher value of ``metric`` is better (accuracy) or worse (the losses)."""
        return metric == "accuracy"


def _metric(value: object, path: str) -> str:
    if isinstance(value, str) and value in METRICS:
        return value
    raise InvalidArgumentError(
        f"{path}: expected one of {list(METRICS)} (the autopilot protects metrics that are "
        f"means of per-row losses), got {_quoted(value)}.",
        parameter=path,
    )


def parse_policy(text: str, *, check_pipeline: bool = True) -> Policy:
    """The policy in YAML ``text``, checked whole (see the module docstring).

    ``check_pipeline``: import ``retrain.pipeline`` and check that it takes ``data_param`` and
    the fixed ``params``.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgumentError(
            f"Expected a policy as YAML text, got {_quoted(text)}.", parameter="policy"
        )
    try:
        check_policy_text(text)  # bounded, aliases expanded, before YAML builds it
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(exc.message, parameter="policy") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgumentError(
            f"The policy is not valid YAML: {str(exc)[: MAX_QUOTED_CHARS * 2]}", parameter="policy"
        ) from None
    if not isinstance(doc, Mapping):
        raise InvalidArgumentError(
            f"Expected the policy to be a YAML mapping (label: ..., retrain: ...), got "
            f"{type(doc).__name__}.",
            parameter="policy",
        )
    if "label" not in doc:
        raise InvalidArgumentError(
            "label: missing; name the outcome the model predicts (the column the retraining "
            "pipeline learns), e.g. 'label: employed'.",
            parameter="label",
        )
    policy = _section(Policy, doc, "")
    if not policy.retrain.pipeline:
        raise InvalidArgumentError(
            "retrain.pipeline: missing; name the pipeline that trains a candidate, e.g. "
            "'pipeline: train.py:training' or 'pipeline: mypkg.flows:training'.",
            parameter="retrain.pipeline",
        )
    _check_consistency(policy)
    if check_pipeline:
        _check_pipeline(policy.retrain)
    return policy


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


def _check_consistency(policy: Policy) -> None:
    bounds = (0.0, 1.0) if policy.metric == "accuracy" else (0.0, math.inf)
    if policy.metric is None:
        bounds = (-math.inf, math.inf)
    minimum = policy.monitor.minimum
    if minimum is not None and not bounds[0] <= minimum <= bounds[1]:
        raise InvalidArgumentError(
            f"monitor.minimum: {policy.metric} lies in [{bounds[0]}, {bounds[1]}], so a "
            f"minimum of {minimum} can never (or always) be met.",
            parameter="monitor.minimum",
        )
    for column, floor in policy.gates.slice_minimums.items():
        if not bounds[0] <= floor <= bounds[1]:
            where = f"gates.slice_minimums.{column[:MAX_KEY_CHARS]}"
            raise InvalidArgumentError(
                f"{where}: {policy.metric} lies in [{bounds[0]}, {bounds[1]}], got {floor}.",
                parameter=where,
            )
    if policy.rollout.strategy == "canary" and len(policy.rollout.steps) < 2:
        raise InvalidArgumentError(
            f"rollout.steps: a canary needs at least one step below 100, got "
            f"{list(policy.rollout.steps)}; use strategy: blue-green to switch at once.",
            parameter="rollout.steps",
        )


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
            raise InvalidArgumentError(
                f"{where}: pipeline {_quoted(retrain.pipeline)} has no parameter {_quoted(name)}; its "
                f"parameters are {sorted(accepted)}.",
                parameter=where,
            )
