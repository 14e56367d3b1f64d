"""``loopwise data drift``: a thin adapter over ``loopwise.data.drift.drift``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from loopwise.cli.common import JsonOption, open_context
from loopwise.cli.output import console, print_json, safe, styled, table

__all__ = ["drift"]

DataArgument = Annotated[
    str, typer.Argument(help="A dataset (NAME or NAME/VERSION) or a Parquet/CSV/Feather file.")
]


def _load(data: str) -> Any:
    """A file is read as is; anything else is a dataset ref, read from the store."""
    from loopwise.data.datasets import READERS

    if Path(data).suffix.lower() in READERS or Path(data).exists():
        return data
    open_context()
    from loopwise.data import load_dataset

    return load_dataset(data, format="arrow")


def drift(
    reference: DataArgument,
    current: DataArgument,
    columns: Annotated[
        str | None,
        typer.Option("--columns", help="Comma-separated columns to compare (default: all shared)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Compare CURRENT with REFERENCE column by column and give the dataset verdict.

    Tests and thresholds are Evidently 0.7's defaults (see docs/drift.md). The exit code is 0
    whether or not the data drifted; scripts read the verdict from --json.
    """
    from loopwise.data.drift import drift as compute

    chosen = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    report = compute(_load(reference), _load(current), columns=chosen)
    if as_json:
        print_json(report.to_dict())
        return
    rows = [
        [
            c.column,
            c.kind,
            c.test,
            c.statistic,
            c.p_value,
            c.threshold,
            styled("[bold red]yes[/]") if c.drifted else "no",
            c.note or "",
        ]
        for c in report.columns.values()
    ]
    table(
        f"{current} against {reference}",
        ["column", "kind", "test", "statistic", "p-value", "threshold", "drifted", "note"],
        rows,
    )
    if report.skipped:
        console.print(f"not compared: {safe(report.skipped)}")
    verdict = "[bold red]drifted[/]" if report.drifted else "[green]no drift[/]"
    console.print(
        f"dataset: {verdict} — {len(report.drifted_columns)} of {len(report.columns)} columns "
        f"drifted ({report.share_drifted:.0%}; the dataset drifts at {report.drift_share:.0%})"
    )
