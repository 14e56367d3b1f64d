"""``loopwise runs``: list, show and compare tracked runs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

import loopwise as lw
from loopwise.cli.common import JsonOption, open_context
from loopwise.cli.output import clean, console, fmt_ms, print_json, safe, table
from loopwise.tracking.lineage import run_artifacts, run_datasets

app = typer.Typer(help="List, inspect and compare tracked runs.", no_args_is_help=True)


@app.command("list")
def list_runs(
    filter: Annotated[
        str,
        typer.Option("--filter", "-f", help="e.g. \"metrics.auc > 0.8 and params.model = 'hgb'\""),
    ] = "",
    order_by: Annotated[
        list[str] | None,
        typer.Option("--order-by", "-o", help="e.g. 'metrics.auc desc' (repeatable)"),
    ] = None,
    max_results: Annotated[int, typer.Option("--max", min=1, help="At most this many runs.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """List the runs of the project, newest first, optionally filtered and ordered."""
    open_context()
    runs = lw.search_runs(filter, order_by=order_by or [], max_results=max_results)
    if as_json:
        print_json(runs)
        return
    # Metrics named in the filter or ordering come first; --json has them all.
    all_keys = sorted({k for r in runs for k in r.metrics})
    asked = filter + " ".join(order_by or [])
    mentioned = [k for k in all_keys if f"metrics.{k}" in asked]
    metric_keys = (mentioned + [k for k in all_keys if k not in mentioned])[:4]
    rows = [
        [
            r.id[:8],
            r.name,
            r.status.value,
            fmt_ms(r.start_ms)[5:16],
            *(r.metrics.get(k) for k in metric_keys),
        ]
        for r in runs
    ]
    table(f"{len(runs)} run(s)", ["id", "name", "status", "started", *metric_keys], rows)


def _resolve(run_id: str) -> str:
    """Accept a unique prefix of a run id, as git does for commits."""
    if len(run_id) == 32:
        return run_id
    matches = [r.id for r in lw.search_runs(f"attributes.id like '{run_id}%'", max_results=2)]
    if len(matches) == 1:
        return matches[0]
    return run_id  # let get_run report it as unknown (or ambiguous ids as not found)


@app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="A run id (or a unique prefix of one).")],
    as_json: JsonOption = False,
) -> None:
    """Show one run: params, latest metrics, tags, datasets, artifacts and environment."""
    open_context()
    run = lw.get_run(_resolve(run_id))
    datasets = run_datasets(run.id)
    artifacts = run_artifacts(run.id)
    if as_json:
        print_json({"run": run, "datasets": datasets, "artifacts": artifacts})
        return
    console.print(
        f"[bold]{safe(run.name)}[/] {run.id} {safe(f'[{run.status.value}]')} started "
        f"{fmt_ms(run.start_ms)}"
    )
    table("params", ["key", "value"], sorted(run.params.items()))
    table("metrics (latest)", ["key", "value"], sorted(run.metrics.items()))
    if run.tags:
        table("tags", ["key", "value"], sorted(run.tags.items()))
    if datasets:
        table(
            "datasets used",
            ["dataset", "rows", "hash"],
            [[d.ref, d.num_rows, d.content_hash[:19]] for d in datasets],
        )
    if artifacts:
        table(
            "artifacts",
            ["path", "bytes", "digest"],
            [[a.path, a.size_bytes, a.digest[:19]] for a in artifacts],
        )
    env = run.environment
    if env:
        git = env.get("git") or {}
        console.print(
            f"Python {safe(env.get('python'))} on {safe(env.get('host'))} "
            f"({safe(env.get('platform'))}); {len(env.get('packages', {}))} packages; "
            f"git {safe(str(git.get('commit', '-'))[:12])}"
            + (" (dirty)" if git.get("dirty") else "")
        )


@app.command("compare")
def compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids (or unique prefixes).")],
    as_json: JsonOption = False,
) -> None:
    """Params and metrics of several runs side by side; differing rows are highlighted."""
    open_context()
    frame = lw.compare_runs([_resolve(r) for r in run_ids])
    if as_json:
        print_json({col: {str(k): v for k, v in frame[col].items()} for col in frame.columns})
        return
    rows = []
    for key, values in frame.iterrows():
        distinct = {str(v) for v in values}
        label = Text(clean(str(key)), style="yellow") if len(distinct) > 1 else str(key)
        rows.append([label, *values.tolist()])
    table("comparison", ["key", *frame.columns], rows)
