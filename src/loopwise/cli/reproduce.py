"""``loopwise reproduce RUN_ID``: execute a pipeline or step run again, say whether it matches.

Thin over ``loopwise.pipelines.reproduction``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from loopwise.cli.common import JsonOption, open_context
from loopwise.cli.output import console, err_console, print_json, safe, styled, table
from loopwise.cli.runs import _resolve

__all__ = ["reproduce"]

_STYLE = {"identical": "green", "within_tolerance": "yellow", "differs": "red"}


def _digest(value: str | None) -> str:
    return "-" if value is None else value.removeprefix("sha256:")[:10]


def reproduce(
    run_id: Annotated[
        str, typer.Argument(help="A pipeline run or step run id (or a unique prefix of one).")
    ],
    rtol: Annotated[
        float,
        typer.Option("--rtol", min=0.0, help="Relative tolerance for metrics and numeric outputs."),
    ] = 1e-6,
    atol: Annotated[
        float, typer.Option("--atol", min=0.0, help="Absolute tolerance, for values near zero.")
    ] = 1e-9,
    timeout_s: Annotated[
        float | None,
        typer.Option("--timeout", min=1.0, help="Stop the re-execution after this many seconds."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Execute a run again in a fresh process and compare it with the original.

    Pipeline runs use their recorded file, params and seed (no cache); step runs their inputs.

    Each step is identical (models: same file content), within --rtol/--atol, or differs.

    What differs is said in plain words: code, data, params, seed, packages, Python, git.

    Exit code 0: identical or within the tolerance; 1: differs.

    Example: loopwise reproduce 3f2a9c1b --rtol 1e-4
    """
    from loopwise.pipelines.reproduction import reproduce as run_again

    open_context()
    with err_console.status("Executing the run again in a fresh process…"):
        result = run_again(_resolve(run_id), rtol=rtol, atol=atol, timeout_s=timeout_s)
    if as_json:
        print_json(result.to_dict())
    else:
        rows = []
        for step in result.steps:
            largest = step.largest_difference
            rows.append(
                [
                    step.node,
                    styled(f"[{_STYLE[step.verdict]}]{step.verdict.replace('_', ' ')}[/]"),
                    "\n".join(
                        f"{o.port}: {_digest(o.old_digest)} → {_digest(o.new_digest)}"
                        for o in step.outputs
                    )
                    or "-",
                    "-"
                    if largest is None
                    else f"{largest.name}: {largest.relative_difference:.2g} (relative)",
                ]
            )
        table(
            f"{result.kind} run {result.run_id[:8]} again as {result.new_run_id[:8]}",
            ["step", "verdict", "outputs (then → now)", "largest difference"],
            rows,
        )
        style = _STYLE[result.verdict]
        verdict = result.verdict.replace("_", " ")
        tolerance = f" (rtol={result.rtol:g}, atol={result.atol:g})"
        console.print(
            f"[bold {style}]{verdict}[/]" + (tolerance if result.verdict != "identical" else ""),
            highlight=False,
        )
        for line in result.explanations:
            console.print(f"  • {safe(line)}", highlight=False)
        if result.notes:
            console.print("Since the original run:", highlight=False)
            for line in result.notes:
                console.print(f"  · {safe(line)}", highlight=False)
    if not result.reproduced:
        raise typer.Exit(1)
