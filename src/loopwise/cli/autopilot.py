"""``loopwise autopilot``: a deployment's policy, one tick of the controller (for cron or CI),
its state, the history of its decisions ("why did the model change?"), and resuming it.

Thin over ``loopwise.autopilot``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loopwise.cli.common import JsonOption, command_hint, open_context
from loopwise.cli.output import console, fmt_ms, print_json, safe, table
from loopwise.errors import InvalidArgumentError

__all__ = ["app"]

app = typer.Typer(
    help="The autopilot: watches a deployment, retrains through a pipeline when it degrades, "
    "gates and canaries the candidate, promotes or rolls back, and escalates to a person when "
    "retraining no longer helps. Every decision is kept with its evidence.\n\n"
    "Example: loopwise autopilot set-policy employment-prod policy.yaml\n\n"
    "Example: loopwise autopilot run-once   (every deployment with a policy; for cron)\n\n"
    "Example: loopwise autopilot history employment-prod",
    no_args_is_help=True,
)

NameArgument = Annotated[str, typer.Argument(help="The deployment, e.g. employment-prod.")]


def _now(text: str | None) -> int | None:
    if text is None:
        return None
    import pandas as pd

    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        stamp = None
    if stamp is None or pd.isna(stamp):
        raise InvalidArgumentError(
            f"Expected --now as an ISO 8601 time such as 2026-12-03T10:00Z, got {text!r}.",
            parameter="--now",
        )
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return int(stamp.value // 1_000_000)


@app.command("set-policy")
def set_policy(
    name: NameArgument,
    path: Annotated[
        Path, typer.Argument(help="The policy, a YAML file (docs/autopilot.md lists every key).")
    ],
    expected_revision: Annotated[
        int | None,
        typer.Option(
            "--expected-revision",
            help="Replace only if the policy is still at this revision (0: none yet).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check a policy file whole and make it the deployment's policy; an invalid one is
    refused, naming the field, and replaces nothing.

    Example: loopwise autopilot set-policy employment-prod policy.yaml
    """
    if not path.is_file():
        raise InvalidArgumentError(
            f"No policy file at {str(path)!r}. Give the path of a YAML file.", parameter="path"
        )
    open_context()
    from loopwise import autopilot

    stored = autopilot.set_policy(name, path.read_text(), expected_revision=expected_revision)
    if as_json:
        print_json(stored)
        return
    console.print(f"{safe(name)}: autopilot policy revision {stored.revision} is in force.")


@app.command("policy")
def policy(
    name: NameArgument,
    revision: Annotated[
        int | None, typer.Option("--revision", help="An earlier revision (default: current).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show a deployment's policy as it was set, and every setting in force (defaults too)."""
    open_context()
    from dataclasses import asdict

    from loopwise import autopilot

    stored, parsed = autopilot.get_policy(name, revision=revision)
    if as_json:
        print_json({"policy": stored, "settings": asdict(parsed)})
        return
    console.print(
        f"[bold]{safe(name)}[/]: policy revision {stored.revision}, set by {safe(stored.actor)} on "
        f"{fmt_ms(stored.created_ms)}"
    )
    console.print(stored.text.rstrip(), highlight=False, markup=False)
    console.print("\n[dim]In force, defaults included:[/]")
    for section, values in asdict(parsed).items():
        if isinstance(values, dict):
            settings = ", ".join(f"{k}={v}" for k, v in values.items())
            console.print(f"  {section}: {settings}", highlight=False, markup=False)
        else:
            console.print(f"  {section}: {values}", highlight=False, markup=False)


@app.command("run-once")
def run_once(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Deployments to tick (default: every deployment with a policy)."),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option("--now", help="The controller's clock (ISO 8601; default: now), to replay."),
    ] = None,
    allow_pipelines: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-pipelines",
            help="Retraining pipelines this run may import and run, comma-separated: "
            "'pkg.module:*', 'pkg.module:name', '/folder/' (its .py files) or "
            "'/path/file.py[:name]'. A policy names a pipeline; only this allows it. Default: "
            "LOOPWISE_AUTOPILOT_PIPELINES, else none (the autopilot escalates instead of "
            "retraining).",
        ),
    ] = None,
    allow_pickle: Annotated[
        bool,
        typer.Option(
            "--allow-pickle",
            help="Let the gates load model versions stored as pickle (code runs on load). "
            "Also LOOPWISE_AUTOPILOT_ALLOW_PICKLE=1.",
        ),
    ] = False,
    allow_outbound_hosts: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-outbound-host",
            help="A HOST or HOST:PORT that policies' metrics_url and webhook may reach although "
            "its addresses are not public (loopback, private …); repeat for more. Also "
            "LOOPWISE_ALLOW_OUTBOUND_HOSTS.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """One tick of the controller for each deployment: finish what was announced, judge a
    rollout in progress, or check production once per window and act. For cron or CI.

    Whoever runs it is the operator: --allow-pipelines says which retraining pipelines it may
    run. Against a server (LOOPWISE_URI=http://…) it records decisions with an admin token.

    Example: loopwise autopilot run-once employment-prod --allow-pipelines 'mypkg.flows:*'
    """
    clock = _now(now)
    from loopwise import outbound

    outbound.allow_hosts(allow_outbound_hosts or ())
    open_context()
    from loopwise import autopilot
    from loopwise.autopilot.settings import split_entries

    from_env = autopilot.OperatorSettings.from_env()
    settings = autopilot.OperatorSettings(
        pipelines=split_entries(allow_pipelines) if allow_pipelines else from_env.pipelines,
        allow_pickle=allow_pickle or from_env.allow_pickle,
    )
    ticks = autopilot.run_all(names or None, now_ms=clock, settings=settings)
    if as_json:
        print_json([{"deployment": t.deployment, "decisions": t.decisions} for t in ticks])
        return
    if not ticks:
        hint = command_hint("autopilot", "set-policy", "DEPLOYMENT", "POLICY.yaml")
        console.print(f"No deployment has an autopilot policy ({safe(hint)}).")
    for tick in ticks:
        if not tick.decisions:
            console.print(f"{safe(tick.deployment)}: nothing to do yet.")
        for decision in tick.decisions:
            console.print(
                f"{safe(tick.deployment)} #{decision.seq} [bold]{safe(decision.kind)}[/]: "
                f"{safe(decision.summary)}",
                highlight=False,
            )


@app.command("status")
def status(name: NameArgument, as_json: JsonOption = False) -> None:
    """What the autopilot believes now: phase, production version, baseline, rollout."""
    open_context()
    from loopwise import autopilot

    found = autopilot.state(name)
    if as_json:
        print_json(found.to_json() if found else None)
        return
    if found is None:
        hint = command_hint("autopilot", "run-once", name)
        console.print(f"{safe(name)}: the autopilot has not run yet ({safe(hint)}).")
        return
    baseline = "-" if found.baseline is None else f"{found.baseline:.4f} ({found.baseline_source})"
    rows: list[list[object]] = [
        ["phase", found.phase + (f" ({found.paused_reason})" if found.paused_reason else "")],
        ["production", found.production],
        ["metric", found.metric or "-"],
        ["baseline", baseline],
        ["failed candidates in a row", found.failed_candidates],
        ["last check", fmt_ms(found.last_check_ms) if found.last_check_ms else "-"],
        ["quarantined ranges", len(found.quarantine)],
    ]
    if found.rollout:
        rows.append(
            ["rollout", f"version {found.rollout.candidate}, step {found.rollout.step + 1}"]
        )
    table(f"Autopilot of {name}", ["", "now"], rows)


@app.command("history")
def history(
    name: NameArgument,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also the checks that found nothing to do.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Every decision, oldest first, with why: the answer to "why did the model change?".
    ``--json`` adds each decision's evidence (metric values, tests, thresholds)."""
    open_context()
    from loopwise import autopilot

    decisions = autopilot.history(name)
    shown = decisions if show_all else [d for d in decisions if d.kind != "observe"]
    if as_json:
        print_json(shown)
        return
    table(
        f"Autopilot of {name}: {len(shown)} of {len(decisions)} decisions"
        + ("" if show_all else " (--all for the quiet checks)"),
        ["#", "at", "decision", "why"],
        [[d.seq, fmt_ms(d.at_ms), d.kind, d.summary] for d in shown],
    )


@app.command("resume")
def resume(
    name: NameArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why it may act again (audited).")],
    as_json: JsonOption = False,
) -> None:
    """Let a paused autopilot act again, once a person has dealt with what it escalated.

    Example: loopwise autopilot resume employment-prod --reason "AGEP fixed upstream"
    """
    open_context()
    from loopwise import autopilot

    decision = autopilot.resume(name, reason=reason)
    if as_json:
        print_json(decision)
        return
    console.print(f"{safe(name)} #{decision.seq}: {safe(decision.summary)}")
