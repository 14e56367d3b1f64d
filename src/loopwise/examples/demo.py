"""The main demo: the training pipeline (``training_pipeline.py``: version the 2015 ACS data,
validate, split, train candidates in parallel, evaluate with slices, register the best), then
serve 2016-2018 (and a broken batch) and monitor what happens (``demo_monitoring.py``), then
let the autopilot run a deployment through 2016-2018 with a shock and a data bug
(``demo_autopilot.py``).

Run it with ``loopwise demo`` (or ``make demo``). It needs the ``sklearn`` extra.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

import loopwise as lw
from loopwise.examples import ACS_FEATURES, ACS_LABEL, load_acs
from loopwise.examples.demo_autopilot import run_autopilot
from loopwise.examples.demo_monitoring import run_monitoring
from loopwise.examples.training_pipeline import (
    CANDIDATES,
    MODEL_NAME,
    SEED,
    SLICES,
    employment_training,
    sample_years,
    slice_metric,
)
from loopwise.pipelines import PipelineResult, StepEvent, StepState

__all__ = ["Candidate", "run_demo"]


@dataclass
class Candidate:
    """One trained candidate as the demo's table shows it."""

    name: str
    run_id: str
    """The run of its train step (for a cached step, the earlier run that trained it)."""
    metrics: dict[str, float]
    fit_s: float


def _progress(console: Console) -> Callable[[StepEvent], None]:
    def show(event: StepEvent) -> None:
        if event.state is StepState.FINISHED:
            console.print(f"  [green]✓[/] {event.label} ({event.duration_s or 0:.1f} s)")
        elif event.state is StepState.CACHED:
            console.print(f"  [cyan]↺[/] {event.label} (cached: run {(event.run_id or '')[:8]})")
        elif event.state is StepState.FAILED:
            console.print(f"  [red]✗[/] {event.label}: {event.error}")

    return show


def _candidates(result: PipelineResult) -> list[Candidate]:
    found = []
    for kind in CANDIDATES:
        trained = result[f"train-{kind}"]
        assert trained.run_id is not None  # a finished or cached step always has its run
        fit_s = lw.get_run(trained.run_id).metrics["fit_s"]
        metrics = {**result.output(f"evaluate-{kind}"), "fit_s": fit_s}
        found.append(Candidate(kind, trained.run_id, metrics, fit_s))
    return found


def _candidate_table(candidates: list[Candidate], best: str) -> Table:
    table = Table(title="Employment model candidates (ACS MA, trained on 2015; ★ = registered)")
    table.add_column("candidate", no_wrap=True)
    for column in ("valid AUC", "valid acc", "2016 AUC", "2016 acc", "fit s"):
        table.add_column(column, justify="right")
    table.add_column("run", no_wrap=True)
    for c in candidates:
        table.add_row(
            ("★ " if c.name == best else "  ") + c.name,
            f"{c.metrics['valid_auc']:.4f}",
            f"{c.metrics['valid_accuracy']:.4f}",
            f"{c.metrics['2016_auc']:.4f}",
            f"{c.metrics['2016_accuracy']:.4f}",
            f"{c.fit_s:.1f}",
            c.run_id[:8],
        )
    return table


def _slice_table(result: PipelineResult, best: str) -> tuple[Table, dict[str, dict[str, Any]]]:
    """Validation accuracy and AUC of the registered model per value of each slice column."""
    evaluated = result[f"evaluate-{best}"]
    assert evaluated.run_id is not None
    metrics = lw.get_run(evaluated.run_id).metrics
    table = Table(title=f"{best} on the validation split, by slice (- : under 30 people)")
    for column in ("slice", "rows", "accuracy", "AUC"):
        table.add_column(column, justify="left" if column == "slice" else "right")
    slices: dict[str, dict[str, Any]] = {}
    for column in SLICES:
        prefix = f"slice/{column}:"
        values = sorted(
            {k[len(prefix) :].partition("/")[0] for k in metrics if k.startswith(prefix)},
            key=lambda v: (len(v), v),
        )
        for value in values:
            row = {
                name: metrics.get(slice_metric(column, value, name))
                for name in ("rows", "accuracy", "auc")
            }
            slices[f"{column}={value}"] = row
            table.add_row(
                f"{column}={value}",
                f"{row['rows'] or 0:,.0f}",
                "-" if row["accuracy"] is None else f"{row['accuracy']:.4f}",
                "-" if row["auc"] is None else f"{row['auc']:.4f}",
            )
    return table, slices


def run_demo(
    uri: str | None = None,
    project: str = "employment",
    quick: bool = False,
    console: Console | None = None,
    executor: str = "local",
    workers: int | None = None,
) -> dict[str, Any]:
    """Run the training pipeline, promote what it registered, then the monitoring act; returns
    a summary for tests and scripts. ``executor``: "local" trains the candidates in parallel
    processes (``workers`` of them, default one per core), "inline" one after the other in this
    process, "ray" on Ray."""
    console = console or Console()
    started = time.perf_counter()
    lw.init(project=project, uri=uri)
    data = sample_years(load_acs(), quick, SEED)  # the years the monitoring act serves

    console.print(
        "Training pipeline [bold]employment-training[/]: load -> validate -> split -> train "
        f"{len(CANDIDATES)} candidates in parallel -> evaluate (slices by "
        f"{' and '.join(SLICES)}) -> register"
    )
    result = employment_training.run(
        {"quick": quick, "seed": SEED},
        executor=executor,
        workers=workers,
        seed=SEED,
        on_event=_progress(console),
    )
    train_version = result.output("load")
    console.print(
        f"Dataset [bold]{train_version.ref}[/]: {train_version.num_rows:,} rows, "
        f"{len(train_version.schema)} columns, {train_version.content_hash[:19]}…"
    )
    candidates = _candidates(result)
    version = result.output("register")
    chosen = lw.get_run(version.run_id).tags["candidate"] if version.run_id else None
    best = next(c for c in candidates if c.name == chosen)
    previous = lw.models.set_alias(MODEL_NAME, version.version, "production")

    loaded = lw.models.load(f"{MODEL_NAME}@production")
    check = load_acs([2018]) if not quick else data[data["year"] == 2018]
    accuracy_2018 = float(
        (loaded.predict(check[ACS_FEATURES]) == check[ACS_LABEL].to_numpy()).mean()
    )

    console.print(_candidate_table(candidates, best.name))
    slice_table, slices = _slice_table(result, best.name)
    console.print(slice_table)
    if result.cached and not result.executed:
        reuse = (
            f"every one of its {len(result.cached)} steps was reused from the cache (same "
            "code, data and params as an earlier run): nothing was retrained"
        )
    elif result.cached:
        reuse = f"{len(result.executed)} steps ran, {len(result.cached)} were reused from the cache"
    else:
        reuse = (
            f"all {len(result.executed)} steps ran; run the demo again on this store and "
            "every step is reused from the cache"
        )
    console.print(f"Pipeline run [bold]{result.run_id[:8]}[/]: {reuse}.")
    if previous == version.version:
        moved = " (it already did)"
    elif previous is not None:
        moved = f" (was version {previous})"
    else:
        moved = ""
    console.print(
        f"Registered [bold]{MODEL_NAME}/{version.version}[/] ({best.name}) and pointed "
        f"[bold]{MODEL_NAME}@production[/] at it{moved}."
    )
    console.print(
        f"Loaded {MODEL_NAME}@production back from the registry: accuracy on 2018 = {accuracy_2018:.4f} "
        f"({len(check):,} people)."
    )
    full_2015 = load_acs([2015])
    monitoring = run_monitoring(data, full_2015, quick, console, project)
    console.print(
        "\n[bold]Act three: the autopilot[/] runs deployment employment-prod through 2016-2018, "
        "a window per survey month, through real drift, a simulated labour-market shock and an "
        "upstream data bug (see loopwise.examples.demo_autopilot)."
    )
    autopilot = run_autopilot(load_acs([2016, 2017, 2018]), version.version, quick, console)
    console.print(f"Done in {time.perf_counter() - started:.1f} s.")
    console.print(
        f"Next: [cyan]loopwise -p {project} runs list[/], [cyan]loopwise -p {project} models show "
        f"{MODEL_NAME}[/], [cyan]loopwise pipeline show "
        f"loopwise.examples.training_pipeline:employment_training[/], "
        f"[cyan]loopwise -p {project} monitor status {MODEL_NAME} --label "
        f"{ACS_LABEL}[/], [cyan]loopwise -p {project} monitor alerts[/], "
        f"[cyan]loopwise -p {project} autopilot history {autopilot['deployment']}[/]"
    )
    return {
        "best": best.name,
        "version": version.version,
        "candidates": {c.name: c.metrics for c in candidates},
        "accuracy_2018": accuracy_2018,
        "dataset": train_version.ref,
        "monitoring": monitoring,
        "autopilot": autopilot,
        "pipeline_run": result.run_id,
        "cached": result.cached,
        "slices": slices,
    }
