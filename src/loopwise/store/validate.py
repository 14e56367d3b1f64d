"""Argument checks shared by every store backend, so each refuses bad input the same way."""

from __future__ import annotations

import numbers
import re
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from loopwise.errors import InvalidArgumentError, NotFoundError
from loopwise.store.artifacts import check_digest
from loopwise.store.entities import PredictionSegment, TrafficPlan

if TYPE_CHECKING:
    from loopwise.store.base import MetricEntry

__all__ = [
    "HOUR_MS",
    "INVALID_TOKEN",
    "MAX_JSON_DEPTH",
    "MAX_PLAN_VERSIONS",
    "MAX_REASON_CHARS",
    "MAX_SUITE_CHARS",
    "MAX_YAML_DEPTH",
    "MODEL_FLAVOURS",
    "PICKLE_FLAVOURS",
    "check_alias",
    "check_dataset_suite",
    "check_digest_argument",
    "check_flavour",
    "check_int",
    "check_key",
    "check_metric_entry",
    "check_metric_value",
    "check_name",
    "check_optional_digest",
    "check_optional_name",
    "check_plan_versions",
    "check_prediction_segment",
    "check_reason",
    "check_revision",
    "check_spool_id",
    "check_step",
    "check_storable_text",
    "check_string_map",
    "check_text",
    "check_time_range",
    "check_traffic_plan",
    "check_upto_seq",
    "check_yaml_text",
]

INVALID_TOKEN = (
    "The API token is not valid: it is unknown, malformed or revoked. Check that the whole "
    "secret (lw_…) was copied, or ask an admin for a new one: loopwise token create."
)
"""The one answer to every bad secret, so that none tells more than another."""

_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")
_KEY = re.compile(r"^[A-Za-z0-9_.\-/ :]{1,250}$")
MAX_VALUE_CHARS = 8000


def check_name(name: object, what: str) -> str:
    """Project, dataset and model names: short, and safe in URLs and file names."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgumentError(
            f"Expected a {what} name of 1-200 letters, digits, '_', '-' or '.', got {name!r}. "
            "Choose a name like 'employment' or 'acs-ma'.",
            parameter="name",
            received=repr(name)[:200],
        )
    return name


def check_key(key: object, what: str) -> str:
    """Metric, param and tag keys: letters, digits, spaces and ``_ - . / :``."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise InvalidArgumentError(
            f"Expected a {what} key of 1-250 letters, digits, spaces or '_-./:', got {key!r}. "
            "Rename the key, e.g. 'val_auc' or 'train/loss'.",
            parameter="key",
            received=repr(key)[:200],
        )
    return key


def check_metric_value(key: str, value: object) -> float:
    """Any real number, NaN and infinity included; never a string or a bool."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        hint = "Convert it with float(...)." if isinstance(value, str) else "Log a single number."
        raise InvalidArgumentError(
            f"Expected a number for metric {key!r}, got {type(value).__name__} {value!r}. {hint}",
            parameter="value",
            key=key,
            received=repr(value)[:200],
        )
    return float(value)


def check_step(key: str, step: object) -> int:
    if (
        isinstance(step, bool)
        or not isinstance(step, numbers.Integral)
        or not 0 <= int(step) < 2**63
    ):
        raise InvalidArgumentError(
            f"Expected a non-negative integer step for metric {key!r}, got {step!r}.",
            parameter="step",
            key=key,
            received=repr(step)[:200],
        )
    return int(step)


def check_string_map(values: Mapping[str, Any], what: str) -> dict[str, str]:
    """Params and tags: keys checked, values turned to strings (as MLflow does)."""
    if not isinstance(values, Mapping):
        raise InvalidArgumentError(
            f"Expected a mapping of {what} names to values, got {type(values).__name__}. "
            f"Pass a dict, e.g. {{'max_depth': 6}}.",
            parameter=what,
        )
    result: dict[str, str] = {}
    for key, value in values.items():
        check_key(key, what)
        text = value if isinstance(value, str) else str(value)
        if len(text) > MAX_VALUE_CHARS:
            raise InvalidArgumentError(
                f"Expected {what} {key!r} to be at most {MAX_VALUE_CHARS} characters, got {len(text)}. "
                "Log long values as an artifact instead.",
                parameter=what,
                key=key,
            )
        result[key] = check_storable_text(text, f"{what} {key!r}")
    return result


def check_optional_name(name: object, what: str) -> str | None:
    return None if name is None else check_name(name, what)


def check_text(text: object, what: str, max_chars: int = MAX_VALUE_CHARS) -> str | None:
    """Free text such as a description: a string of bounded length, or None."""
    if text is None:
        return None
    if not isinstance(text, str) or len(text) > max_chars:
        got = f"{len(text)} characters" if isinstance(text, str) else type(text).__name__
        raise InvalidArgumentError(
            f"Expected the {what} to be a string of at most {max_chars} characters, got {got}.",
            parameter=what,
        )
    return check_storable_text(text, f"the {what}")


def check_storable_text(text: str, what: str = "text") -> str:
    """Refuse what some backend cannot store: NUL (PostgreSQL) and lone surrogates (not UTF-8)."""
    if "\x00" in text:
        raise InvalidArgumentError(
            f"Expected {what} without NUL characters ('\\x00'), which PostgreSQL cannot store. "
            "Remove them.",
            parameter=what,
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(
            f"Expected {what} to be valid Unicode, got a lone surrogate such as '\\ud800'. "
            "Decode the text from its bytes with the right encoding.",
            parameter=what,
        ) from None
    return text


_SPOOL_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def check_spool_id(spool_id: object) -> str:
    """A metric spool's id (``<pid>-<hex>``), as sent by a client replaying its spool."""
    if not isinstance(spool_id, str) or not _SPOOL_ID.match(spool_id):
        raise InvalidArgumentError(
            f"Expected a spool id of 1-64 letters, digits, '_', '-' or '.', got {spool_id!r}.",
            parameter="spool_id",
        )
    return spool_id


def check_metric_entry(entry: MetricEntry) -> MetricEntry:
    """One metric value, checked and normalised (key, number, step, integer timestamp)."""
    key = check_key(entry.key, "metric")
    return type(entry)(
        entry.run_id,
        key,
        check_metric_value(key, entry.value),
        check_step(key, entry.step),
        int(entry.timestamp_ms),
    )


MODEL_FLAVOURS = frozenset({"lightgbm", "onnx", "python", "sklearn", "xgboost"})
"""The flavours a model version may record: those ``loopwise.registry.flavours`` can load (a
registry test keeps the two lists equal; the store sits below the registry)."""

PICKLE_FLAVOURS = frozenset({"python"})
"""The flavours whose loader unpickles (the registry test keeps this equal to the flavours with
``uses_pickle``); the server reads it here so that serving the API never imports the loaders."""


def check_flavour(flavour: object) -> str:
    """A known flavour name: a version whose flavour no loader knows is refused on the way in."""
    if not isinstance(flavour, str) or flavour not in MODEL_FLAVOURS:
        shown = repr(flavour)[:60]
        raise InvalidArgumentError(
            f"Expected the model flavour to be one of {sorted(MODEL_FLAVOURS)}, got {shown}. "
            "Register models with lw.models.log_model, which picks it.",
            parameter="flavour",
        )
    return flavour


def check_alias(alias: object) -> str:
    """Alias names: like other names, but never a number (numbers name versions)."""
    name = check_name(alias, "alias")
    if name.isdigit():
        raise InvalidArgumentError(
            f"Expected an alias that is not a number, got {alias!r}: numbers name versions. "
            "Choose a word such as 'production' or 'candidate'.",
            parameter="alias",
        )
    return name


HOUR_MS = 3_600_000
_INT64_MAX = 2**63 - 1


def check_int(value: object, parameter: str, low: int = 0, unit: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentError(
            f"Expected {parameter} as an integer{unit}, got {type(value).__name__} {value!r}.",
            parameter=parameter,
            received=repr(value)[:200],
        )
    if not low <= int(value) <= _INT64_MAX:
        raise InvalidArgumentError(
            f"Expected {parameter} between {low} and {_INT64_MAX}, got {value!r}.",
            parameter=parameter,
            received=repr(value)[:200],
        )
    return int(value)


def _check_ms(value: object, parameter: str) -> int:
    return check_int(value, parameter, unit=" (milliseconds since the epoch)")


def check_upto_seq(upto_seq: object) -> int:
    """How far a spool has reached: an integer >= 0."""
    return check_int(upto_seq, "upto_seq")


def check_time_range(start_ms: object, end_ms: object) -> tuple[int | None, int | None]:
    """``[start_ms, end_ms)`` with either end open (None); start must not be after end."""
    start = None if start_ms is None else _check_ms(start_ms, "start_ms")
    end = None if end_ms is None else _check_ms(end_ms, "end_ms")
    if start is not None and end is not None and start > end:
        raise InvalidArgumentError(
            f"Expected start_ms <= end_ms, got start_ms={start} after end_ms={end}. The range is "
            "[start_ms, end_ms): swap them.",
            parameter="end_ms",
        )
    return start, end


def check_prediction_segment(segment: PredictionSegment) -> PredictionSegment:
    """A prediction-log segment as a writer describes it: names, digest, hour and row counts."""
    if not isinstance(segment, PredictionSegment):
        raise InvalidArgumentError(
            f"Expected a PredictionSegment, got {type(segment).__name__}.", parameter="segments"
        )
    check_name(segment.project, "project")
    check_name(segment.deployment, "deployment")
    if not isinstance(segment.digest, str):
        raise InvalidArgumentError(
            f"Expected a digest of the form 'sha256:<64 hex digits>', got {segment.digest!r}.",
            parameter="digest",
        )
    check_digest(segment.digest)
    hour = _check_ms(segment.hour_ms, "hour_ms")
    if hour % HOUR_MS:
        raise InvalidArgumentError(
            f"Expected hour_ms at the start of an hour (a multiple of {HOUR_MS}), got {hour}; "
            f"that hour starts at {hour - hour % HOUR_MS}.",
            parameter="hour_ms",
        )
    low = _check_ms(segment.min_timestamp_ms, "min_timestamp_ms")
    high = _check_ms(segment.max_timestamp_ms, "max_timestamp_ms")
    if not hour <= low <= high < hour + HOUR_MS:
        raise InvalidArgumentError(
            f"Expected hour_ms <= min_timestamp_ms <= max_timestamp_ms < hour_ms + {HOUR_MS} "
            f"(one hour), got {hour}, {low}, {high}. Split the rows by hour.",
            parameter="min_timestamp_ms",
        )
    num_rows = check_int(segment.num_rows, "num_rows", low=1)
    size_bytes = check_int(segment.size_bytes, "size_bytes", low=1)
    return PredictionSegment(
        segment.project,
        segment.deployment,
        hour,
        segment.digest,
        num_rows,
        low,
        high,
        size_bytes,
        segment.created_ms,
    )


MAX_SUITE_CHARS = 1_000_000
"""The longest validation suite (YAML text) a dataset may keep: far beyond any real one."""


def check_digest_argument(digest: object, what: str) -> str:
    """An artifact digest ``sha256:<64 hex digits>`` passed as parameter ``what``."""
    if not isinstance(digest, str):
        raise InvalidArgumentError(
            f"Expected {what} as a digest 'sha256:<64 hex digits>', got {digest!r}.",
            parameter=what,
        )
    try:
        check_digest(digest)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(exc.message, parameter=what) from None
    return digest


def check_optional_digest(digest: object, what: str) -> str | None:
    """None, or an artifact digest."""
    return None if digest is None else check_digest_argument(digest, what)


def check_dataset_suite(suite: object, on_failure: object) -> tuple[str, str]:
    """A suite to attach to a dataset: non-empty YAML text of bounded size, and what a
    failing version does (``warn`` or ``fail``)."""
    if on_failure not in ("warn", "fail"):
        raise InvalidArgumentError(
            f"Expected on_failure 'warn' (log the version, report the findings) or 'fail' "
            f"(refuse the version), got {on_failure!r}.",
            parameter="on_failure",
        )
    text = check_yaml_text(
        suite,
        ("the suite", "a suite"),
        MAX_SUITE_CHARS,
        "suite",
        max_values=MAX_SUITE_CHARS,
        build="Build one with loopwise.data.validation.infer_suite(df).to_yaml().",
        shorten="Split it, or check fewer columns.",
    )
    return check_storable_text(text, "the suite"), str(on_failure)


def check_yaml_text(
    text: object,
    names: tuple[str, str],
    limit: int,
    parameter: str,
    *,
    max_values: int,
    build: str,
    shorten: str,
) -> str:
    """Non-blank YAML text of at most ``limit`` characters and ``max_values`` values once its
    aliases are expanded; ``names`` say what it is (``("the suite", "a suite")``), ``build``
    how to make one, ``shorten`` how to trim one. Text YAML cannot parse passes: its reader
    says what is wrong with it."""
    if not isinstance(text, str) or not text.strip():
        got = "blank text" if isinstance(text, str) else type(text).__name__
        raise InvalidArgumentError(
            f"Expected {names[0]} as non-empty YAML text, got {got}. {build}",
            parameter=parameter,
        )
    if len(text) > limit:
        raise InvalidArgumentError(
            f"Expected {names[1]} of at most {limit} characters, got {len(text)}. {shorten}",
            parameter=parameter,
        )
    problem = _yaml_expansion(text, max_values)
    if problem:
        raise InvalidArgumentError(
            f"Expected {names[1]} of at most {max_values} YAML values nested at most "
            f"{MAX_YAML_DEPTH} deep once its aliases (*name) are expanded, got one that "
            f"{problem}. Write the values out instead of repeating aliases.",
            parameter=parameter,
        )
    return text


MAX_YAML_DEPTH = 64
"""How deeply a suite or a policy may nest (aliases expanded)."""


def _yaml_expansion(text: str, max_values: int) -> str:
    """What makes ``text`` too big once its aliases are expanded (empty: nothing).

    A few hundred characters of nested aliases (a "billion laughs") stand for billions of
    values: anything that walks or prints the loaded document would never finish. The
    document is composed (aliases stay shared nodes, so this is linear in the text) and the
    expanded size and depth of each node computed once."""
    import yaml  # deferred: PyYAML (~25 ms) is needed only for suites and policies

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)  # pure Python: no C stack to overflow
    except yaml.YAMLError:
        return ""
    except RecursionError:
        return f"nests deeper than {MAX_YAML_DEPTH} levels"
    if root is None:
        return ""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        children = _yaml_children(node)
        key = id(node)
        if finished:
            open_nodes.discard(key)
            size[key] = min(1 + sum(size[id(c)] for c in children), max_values + 1)
            height[key] = 1 + max((height[id(c)] for c in children), default=0)
            if size[key] > max_values:
                return f"expands to more than {max_values} values"
            if height[key] > MAX_YAML_DEPTH:
                return f"nests deeper than {MAX_YAML_DEPTH} levels"
            continue
        if key in size:
            continue
        if key in open_nodes:
            return "has an alias inside the value it names (a loop)"
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)
    return ""


def _yaml_children(node: Any) -> list[Any]:
    import yaml  # deferred: PyYAML (~25 ms) is needed only for suites and policies

    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


MAX_PLAN_VERSIONS = 10
"""The most versions one traffic plan may name (with a share or in shadow)."""
MAX_REASON_CHARS = 2000


def _plan_version(value: object, field: str) -> int:
    """A version number in a plan: a positive integer (or its digits, as JSON keys carry it)."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise InvalidArgumentError(
            f"Expected {field} to name model versions by number (1, 2, …), got {value!r}. "
            "Write a plan like {3: 95, 4: 5} (CLI: --plan 3=95,4=5).",
            parameter=field,
            received=repr(value)[:200],
        )
    return check_int(value, field, low=1)


def check_traffic_plan(plan: object) -> TrafficPlan:
    """A traffic plan's shape: whole percentages from 1 to 100 summing to exactly 100, each
    version once, shadow versions apart from those with a share, at most
    ``MAX_PLAN_VERSIONS`` versions. A mapping is taken as the shares alone.

    Returns the plan with its versions in ascending order (the order ``assign`` lays shares out).
    """
    shares: object
    shadow: object
    if isinstance(plan, TrafficPlan):
        shares, shadow = plan.shares, plan.shadow
    elif isinstance(plan, Mapping):
        shares, shadow = plan, []
    else:
        raise InvalidArgumentError(
            f"Expected a traffic plan (TrafficPlan, or a mapping of version to percent such as "
            f"{{3: 95, 4: 5}}), got {type(plan).__name__}.",
            parameter="plan",
        )
    if not isinstance(shares, Mapping) or not shares:
        raise InvalidArgumentError(
            "Expected the plan's shares to give at least one version a percentage, e.g. "
            "{3: 100}; got none.",
            parameter="plan.shares",
        )
    checked: dict[int, int] = {}
    for key, share in shares.items():
        version = _plan_version(key, "plan.shares")
        if version in checked:
            raise InvalidArgumentError(
                f"Expected each version once in plan.shares, got version {version} twice. "
                "Give it one share.",
                parameter="plan.shares",
                version=version,
            )
        if isinstance(share, bool) or not isinstance(share, numbers.Integral):
            raise InvalidArgumentError(
                f"Expected whole percentages in plan.shares, got {share!r} for version "
                f"{version}. Round it to an integer from 1 to 100.",
                parameter="plan.shares",
                version=version,
            )
        if not 1 <= int(share) <= 100:
            hint = (
                "leave the version out of the plan to give it no traffic"
                if int(share) <= 0
                else "no version can take more than all of it"
            )
            raise InvalidArgumentError(
                f"Expected each share in plan.shares to be a percentage from 1 to 100, got "
                f"{int(share)} for version {version}: {hint}.",
                parameter="plan.shares",
                version=version,
            )
        checked[version] = int(share)
    total = sum(checked.values())
    if total != 100:
        fix = (
            f"add {100 - total} to a version"
            if total < 100
            else f"take {total - 100} from a version"
        )
        raise InvalidArgumentError(
            f"Expected the shares in plan.shares to sum to exactly 100, got {total}: {fix}.",
            parameter="plan.shares",
            total=total,
        )
    if isinstance(shadow, (str, bytes)) or not isinstance(shadow, (list, tuple)):
        raise InvalidArgumentError(
            f"Expected plan.shadow as a list of version numbers, got {type(shadow).__name__}.",
            parameter="plan.shadow",
        )
    copies: list[int] = []
    for item in shadow:
        version = _plan_version(item, "plan.shadow")
        if version in copies:
            raise InvalidArgumentError(
                f"Expected each version once in plan.shadow, got version {version} twice.",
                parameter="plan.shadow",
                version=version,
            )
        if version in checked:
            raise InvalidArgumentError(
                f"Expected shadow versions apart from those with a share, got version {version} "
                f"in both plan.shares ({checked[version]}%) and plan.shadow: a version either "
                "answers or shadows. Remove it from one of them.",
                parameter="plan.shadow",
                version=version,
            )
        copies.append(version)
    if len(checked) + len(copies) > MAX_PLAN_VERSIONS:
        raise InvalidArgumentError(
            f"Expected a plan of at most {MAX_PLAN_VERSIONS} versions (shares and shadow), got "
            f"{len(checked) + len(copies)}. Retire versions that no longer need traffic.",
            parameter="plan",
        )
    return TrafficPlan(shares=dict(sorted(checked.items())), shadow=sorted(copies))


def check_plan_versions(plan: TrafficPlan, model: str, existing: Collection[int]) -> None:
    """Every version a plan names must be a registered version of the deployment's model."""
    missing = [v for v in plan.versions if v not in existing]
    if missing:
        field = "plan.shares" if missing[0] in plan.shares else "plan.shadow"
        raise NotFoundError(
            f"Expected the versions in {field} to be registered versions of model {model!r}, "
            f"got version {missing[0]}; it has versions {sorted(existing)}. Register it first "
            "(run.log_model) or fix the plan.",
            kind="model_version",
            wanted=f"{model}/{missing[0]}",
            parameter=field,
        )


def check_reason(reason: object, required: bool = True) -> str:
    """Why a deployment changes: text for the history, required for every change but creation."""
    if not isinstance(reason, str):
        raise InvalidArgumentError(
            f"Expected the reason as text, got {type(reason).__name__}.", parameter="reason"
        )
    if required and not reason.strip():
        raise InvalidArgumentError(
            "Expected a reason for the change, got none: say why, e.g. 'canary 25% after "
            "a clean day' (CLI: --reason). The history shows it.",
            parameter="reason",
        )
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidArgumentError(
            f"Expected a reason of at most {MAX_REASON_CHARS} characters, got {len(reason)}. "
            "Keep the evidence elsewhere (an alert's details, a run) and name it.",
            parameter="reason",
        )
    try:
        return check_storable_text(reason, "the reason")
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(exc.message, parameter="reason") from None


def check_revision(revision: object, parameter: str) -> int | None:
    """A deployment revision number (1, 2, …), or None."""
    return None if revision is None else check_int(revision, parameter, low=1)


MAX_JSON_DEPTH = 64
"""How deeply stored free-form JSON may nest (decisions, audit records, the REST API's JSON)."""
