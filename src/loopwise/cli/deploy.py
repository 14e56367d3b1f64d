"""``loopwise deploy``: deployments and their traffic plans — create, status, set, history,
rollback, list.

Thin over ``loopwise.deployments``; plans are written ``VERSION=PERCENT`` pairs (``3=95,4=5``).
"""

from __future__ import annotations

from typing import Annotated

import typer

import loopwise as lw
from loopwise.cli.common import JsonOption, open_context
from loopwise.cli.output import console, fmt_ms, print_json, safe, table
from loopwise.errors import InvalidArgumentError
from loopwise.store import Deployment, DeploymentChange, TrafficPlan

__all__ = ["app", "parse_plan"]

app = typer.Typer(
    help="Deployments: a model served through a traffic plan over its versions (e.g. 95% on "
    "version 3, 5% on a canary, version 4), with a history of every change and rollback.\n\n"
    "Example: loopwise deploy create employment-prod --model employment --version 3\n\n"
    "Example: loopwise deploy set employment-prod --plan 3=95,4=5 --reason 'canary 4'\n\n"
    "Example: loopwise deploy rollback employment-prod --reason 'errors up'",
    no_args_is_help=True,
)

BAR_CHARS = 40
"""Width of a 100% bar in ``deploy status``."""

NameArgument = Annotated[str, typer.Argument(help="The deployment, e.g. employment-prod.")]
PlanOption = Annotated[
    str | None,
    typer.Option("--plan", help="Shares as VERSION=PERCENT pairs summing to 100, e.g. 3=95,4=5."),
]
ShadowOption = Annotated[
    str | None,
    typer.Option(
        "--shadow",
        help="Versions that get a copy of every request (answers logged, not returned), e.g. 5.",
    ),
]
ExpectedOption = Annotated[
    int | None,
    typer.Option(
        "--expected-revision",
        help="Change only if the deployment is still at this revision (for scripts).",
    ),
]


def _version(text: str, option: str) -> int:
    if not text.strip().isdigit():
        raise InvalidArgumentError(
            f"Expected {option} to name versions by number, got {text!r}.", parameter=option
        )
    return int(text)


def parse_plan(text: str, shadow: str | None = None) -> TrafficPlan:
    """``3=95,4=5`` (and ``--shadow 5,6``) as a plan; the store checks shares and versions."""
    shares: dict[int, int] = {}
    for pair in text.split(","):
        version, sep, share = pair.partition("=")
        if not sep or not share.strip().lstrip("-").isdigit():
            raise InvalidArgumentError(
                f"Expected --plan as VERSION=PERCENT pairs separated by commas, e.g. 3=95,4=5; "
                f"got {pair.strip()!r} in {text!r}.",
                parameter="--plan",
            )
        number = _version(version, "--plan")
        if number in shares:
            raise InvalidArgumentError(
                f"Expected each version once in --plan, got version {number} twice in {text!r}. "
                "Give it one share.",
                parameter="--plan",
            )
        shares[number] = int(share)
    copies = [] if not shadow else [_version(v, "--shadow") for v in shadow.split(",")]
    return TrafficPlan(shares, copies)


def _plan_text(plan: TrafficPlan) -> str:
    text = ", ".join(f"{version}={share}%" for version, share in plan.shares.items())
    if plan.shadow:
        text += f" (shadow {', '.join(str(v) for v in plan.shadow)})"
    return text


def _bar(share: int) -> str:
    return "█" * max(1, round(share * BAR_CHARS / 100))


def _change_text(change: DeploymentChange) -> str:
    restored = (
        f" (restored revision {change.restored_revision})" if change.restored_revision else ""
    )
    reason = f": {change.reason}" if change.reason else ""
    return f"{change.kind}{restored} by {change.actor} at {fmt_ms(change.time_ms)}{reason}"


@app.command("create")
def create(
    name: NameArgument,
    model: Annotated[str, typer.Option("--model", help="The registered model to serve.")],
    version: Annotated[
        int | None, typer.Option("--version", help="Serve this one version (all the traffic).")
    ] = None,
    plan: PlanOption = None,
    shadow: ShadowOption = None,
    reason: Annotated[str, typer.Option("--reason", help="Why; kept in the history.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Create a deployment of MODEL: all traffic on --version, or split by --plan.

    Example: loopwise deploy create employment-prod --model employment --version 3

    Example: loopwise deploy create employment-prod --model employment --plan 3=95,4=5
    """
    if (version is None) == (plan is None):
        raise InvalidArgumentError(
            "Expected either --version N (all traffic on one version) or --plan 3=95,4=5, "
            f"got {'both' if plan is not None else 'neither'}.",
            parameter="--plan",
        )
    chosen = parse_plan(plan if plan is not None else f"{version}=100", shadow)
    open_context()
    deployment = lw.deployments.create(name, model, chosen, reason=reason)
    if as_json:
        print_json(deployment)
        return
    console.print(
        f"Created deployment [bold]{safe(deployment.name)}[/] of model {safe(deployment.model)} at "
        f"revision 1: {_plan_text(deployment.plan)}."
    )


@app.command("status")
def status(name: NameArgument, as_json: JsonOption = False) -> None:
    """Show a deployment's current plan (a bar per share), its revision and its last change.

    Example: loopwise deploy status employment-prod
    """
    open_context()
    deployment = lw.deployments.get(name)
    last = lw.deployments.history(name)[-1]
    if as_json:
        print_json({"deployment": deployment, "last_change": last})
        return
    rows: list[list[object]] = [
        [version, f"{share}%", _bar(share)] for version, share in deployment.plan.shares.items()
    ]
    rows += [[version, "shadow", "a copy of every request"] for version in deployment.plan.shadow]
    table(
        f"{deployment.name}: model {deployment.model}, revision {deployment.revision}",
        ["version", "share", "traffic"],
        rows,
    )
    console.print(f"Last change: {safe(_change_text(last))}", highlight=False)


@app.command("set")
def set_plan(
    name: NameArgument,
    plan: Annotated[
        str,
        typer.Option(
            "--plan", help="Shares as VERSION=PERCENT pairs summing to 100, e.g. 3=75,4=25."
        ),
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why; kept in the history.")],
    shadow: ShadowOption = None,
    expected_revision: ExpectedOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give a deployment a new traffic plan, as its next revision.

    Example: loopwise deploy set employment-prod --plan 3=75,4=25 --reason "canary clean for a day"
    """
    chosen = parse_plan(plan, shadow)
    open_context()
    before = lw.deployments.get(name)
    after = lw.deployments.set_plan(
        name, chosen, reason=reason, expected_revision=expected_revision
    )
    if as_json:
        print_json(after)
    elif after.revision == before.revision:
        console.print(
            f"{safe(name)} already follows {_plan_text(after.plan)} (revision {after.revision}); "
            "nothing changed."
        )
    else:
        console.print(
            f"{safe(name)} → revision {after.revision}: {_plan_text(after.plan)} "
            f"(was {_plan_text(before.plan)})."
        )


@app.command("history")
def history(name: NameArgument, as_json: JsonOption = False) -> None:
    """List every revision of a deployment, oldest first: plan, kind, who, when and why.

    Example: loopwise deploy history employment-prod --json
    """
    open_context()
    changes = lw.deployments.history(name)
    if as_json:
        print_json(changes)
        return
    rows = [
        [
            c.revision,
            c.kind if c.restored_revision is None else f"rollback to {c.restored_revision}",
            _plan_text(c.plan),
            c.actor,
            fmt_ms(c.time_ms),
            c.reason or "-",
        ]
        for c in changes
    ]
    table(
        f"{name}: {len(changes)} revision(s)", ["rev", "kind", "plan", "by", "at", "reason"], rows
    )


@app.command("rollback")
def rollback(
    name: NameArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why; kept in the history.")],
    to: Annotated[
        int | None,
        typer.Option(
            "--to",
            help="The revision whose plan to restore. Default: the plan in force before the "
            "current one was first set (twice goes two plans back).",
        ),
    ] = None,
    expected_revision: ExpectedOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restore an earlier plan at once, recorded as a new revision.

    Example: loopwise deploy rollback employment-prod --reason "error rate doubled"

    Example: loopwise deploy rollback employment-prod --to 1 --reason "back to the start"
    """
    open_context()
    before = lw.deployments.get(name)
    after = lw.deployments.rollback(
        name, reason=reason, to_revision=to, expected_revision=expected_revision
    )
    if as_json:
        print_json(after)
    elif after.revision == before.revision:
        console.print(
            f"{safe(name)} already follows revision {to}'s plan ({_plan_text(after.plan)}); nothing "
            "changed."
        )
    else:
        restored = lw.deployments.history(name)[-1].restored_revision
        console.print(
            f"Rolled {safe(name)} back to revision {restored}'s plan as revision {after.revision}: "
            f"{_plan_text(after.plan)} (was {_plan_text(before.plan)})."
        )


@app.command("list")
def list_deployments(as_json: JsonOption = False) -> None:
    """List the project's deployments with their current plans.

    Example: loopwise deploy list --json
    """
    open_context()
    deployments: list[Deployment] = lw.deployments.list_deployments()
    if as_json:
        print_json(deployments)
        return
    rows = [
        [d.name, d.model, _plan_text(d.plan), d.revision, fmt_ms(d.updated_ms)] for d in deployments
    ]
    table(
        f"{len(deployments)} deployment(s)",
        ["deployment", "model", "plan", "revision", "updated"],
        rows,
    )
