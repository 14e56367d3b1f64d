"""``loopwise data``: dataset versions and their lineage."""

from __future__ import annotations

from typing import Annotated

import typer

import loopwise as lw
from loopwise.cli import drift as drift_cli
from loopwise.cli import validation
from loopwise.cli.common import JsonOption, command_hint, open_context
from loopwise.cli.output import console, fmt_ms, print_json, safe, table
from loopwise.tracking.lineage import dataset_runs

app = typer.Typer(help="List and inspect versioned datasets.", no_args_is_help=True)


@app.command("list")
def list_datasets(
    name: Annotated[str | None, typer.Argument(help="Only versions of this dataset.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List dataset versions of the project."""
    open_context()
    versions = lw.list_datasets(name)
    if as_json:
        print_json(versions)
        return
    rows = [
        [v.ref, v.split, v.num_rows, len(v.schema), v.content_hash[:19], fmt_ms(v.created_ms)]
        for v in versions
    ]
    table(
        f"{len(versions)} dataset version(s)",
        ["dataset", "split", "rows", "columns", "hash", "created"],
        rows,
    )


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME (latest version) or NAME/VERSION.")],
    as_json: JsonOption = False,
) -> None:
    """Show a dataset version: schema, size, hash and the runs that used it."""
    open_context()
    # Imported here: commands such as `server` then never load pandas.
    from loopwise.data.datasets import get_dataset

    version = get_dataset(ref)
    runs = dataset_runs(version.id)
    if as_json:
        print_json({"dataset": version, "runs": runs})
        return
    console.print(
        f"[bold]{safe(version.ref)}[/] {version.num_rows:,} rows, split "
        f"{safe(version.split or '-')}, created {fmt_ms(version.created_ms)}\n"
        f"content {safe(version.content_hash)}\nfile    {safe(version.artifact_digest)}"
    )
    console.print(
        f"profile {safe(version.profile_digest)}"
        if version.profile_digest
        else f"profile none yet: `{safe(command_hint('data', 'profile', version.ref))}` computes "
        "and keeps it"
    )
    table("schema", ["column", "type"], list(version.schema.items()))
    table("used by runs", ["run id"], [[r] for r in runs])


@app.command("profile")
def profile(
    ref: Annotated[str, typer.Argument(help="NAME (latest version) or NAME/VERSION.")],
    as_json: JsonOption = False,
) -> None:
    """Show a dataset version's profile: per column its nulls, range, distinct and top values."""
    open_context()
    from loopwise.data import dataset_profile
    from loopwise.data.datasets import get_dataset

    version = get_dataset(ref)
    summary = dataset_profile(version)
    if as_json:
        print_json({"dataset": version.ref, **summary.to_dict()})
        return
    rows = [
        [
            column,
            c.kind,
            c.count,
            f"{100 * c.nulls / c.count:.1f}%" if c.count else "-",
            c.min,
            c.quantile(0.5),
            c.max,
            c.mean,
            round(c.distinct()),
            ", ".join(f"{value} ({n:,})" for value, n in c.top(3)),
        ]
        for column, c in summary.columns.items()
    ]
    table(
        f"{version.ref}: {summary.num_rows:,} rows",
        ["column", "kind", "count", "nulls", "min", "p50", "max", "mean", "distinct", "top"],
        rows,
    )
    if summary.skipped:
        console.print(f"not profiled (unsupported types): {safe(summary.skipped)}")


# Validation suites live in their own module; registered last so `--help` lists them last.
app.command("validate")(validation.validate)
app.add_typer(validation.suite_app, name="suite")
app.command("drift")(drift_cli.drift)
