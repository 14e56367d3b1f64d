"""Checks of deployments: traffic plans, the versions they name, reasons and revisions."""

from __future__ import annotations

import numbers
from collections.abc import Collection, Mapping

from loopwise.errors import InvalidArgumentError, NotFoundError
from loopwise.store.checks.constraints import Length, refusal, shown_length
from loopwise.store.checks.values import check_int, check_storable_text
from loopwise.store.entities import TrafficPlan

__all__ = [
    "MAX_PLAN_VERSIONS",
    "MAX_REASON_CHARS",
    "check_plan_versions",
    "check_reason",
    "check_revision",
    "check_traffic_plan",
]

MAX_PLAN_VERSIONS = 10
"""The most versions one traffic plan may name (with a share or in shadow)."""
MAX_REASON_CHARS = 2000

REASON = Length(
    high=MAX_REASON_CHARS,
    expected="a reason of at most {high} characters",
    hint="Keep the evidence elsewhere (an alert's details, a run) and name it.",
    show=shown_length,
)


def _plan_version(value: object, field: str) -> int:
    """A version number in a plan: a positive integer (or its digits, as JSON keys carry it)."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise refusal(
            f"{field} to name model versions by number (1, 2, …)",
            repr(value),
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
        raise refusal(
            "a traffic plan (TrafficPlan, or a mapping of version to percent such as "
            "{3: 95, 4: 5})",
            type(plan).__name__,
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
            raise refusal(
                "each version once in plan.shares",
                f"version {version} twice",
                "Give it one share.",
                parameter="plan.shares",
                version=version,
            )
        if isinstance(share, bool) or not isinstance(share, numbers.Integral):
            raise refusal(
                "whole percentages in plan.shares",
                f"{share!r} for version {version}",
                "Round it to an integer from 1 to 100.",
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
        raise refusal(
            "plan.shadow as a list of version numbers",
            type(shadow).__name__,
            parameter="plan.shadow",
        )
    copies: list[int] = []
    for item in shadow:
        version = _plan_version(item, "plan.shadow")
        if version in copies:
            raise refusal(
                "each version once in plan.shadow",
                f"version {version} twice",
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
        raise refusal(
            f"a plan of at most {MAX_PLAN_VERSIONS} versions (shares and shadow)",
            str(len(checked) + len(copies)),
            "Retire versions that no longer need traffic.",
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
        raise refusal("the reason as text", type(reason).__name__, parameter="reason")
    if required and not reason.strip():
        raise InvalidArgumentError(
            "Expected a reason for the change, got none: say why, e.g. 'canary 25% after "
            "a clean day' (CLI: --reason). The history shows it.",
            parameter="reason",
        )
    REASON.check(reason, "reason")
    try:
        return check_storable_text(reason, "the reason")
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(exc.message, parameter="reason") from None


def check_revision(revision: object, parameter: str) -> int | None:
    """A deployment revision number (1, 2, …), or None."""
    return None if revision is None else check_int(revision, parameter, low=1)
