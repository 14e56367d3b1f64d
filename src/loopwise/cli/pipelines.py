"""``loopwise pipeline``: run, resume, show, sweep and list pipelines, with a live progress view.

Thin over ``loopwise.pipelines`` (``load_pipeline``, ``run``, ``sweep``); steps' states come
from the runner's ``on_event`` callback.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

import loopwise as lw
from loopwise import pipelines as sdk
from loopwise.cli.common import ExecutorName, JsonOption, command_hint, open_context
from loopwise.cli.output import clean, console, err_console, fmt_ms, print_json, safe, table
from loopwise.cli.runs import _resolve as resolve_run_id
from loopwise.errors import InvalidArgumentError, LoopwiseError, PipelineFailedError
from loopwise.pipelines.graph import Graph, Pipeline, TextRole, params_text
from loopwise.pipelines.records import run_record
from loopwise.pipelines.results import StepEvent, StepState
from loopwise.pipelines.space import parse_grid, parse_space

__all__ = ["app"]

app = typer.Typer(
    help="Run, resume, inspect and sweep pipelines (steps decorated with @lw.step).",
    no_args_is_help=True,
)

REF_HELP = "The pipeline: path/to/file.py:name or package.module:name."


class GraphFormat(StrEnum):
    text = "text"
    mermaid = "mermaid"
    dot = "dot"


class Mode(StrEnum):
    max = "max"
    min = "min"


ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param", help="A pipeline param as key=value, read by its annotation (repeatable)."
    ),
]
ExecutorOption = Annotated[
    ExecutorName,
    typer.Option(
        "--executor",
        "-e",
        help="local: independent steps in parallel processes; ray: on Ray (the ray extra); "
        "inline: one at a time in this process.",
    ),
]
WorkersOption = Annotated[
    int | None, typer.Option("--workers", "-w", min=1, help="Parallel steps at most.")
]
SeedOption = Annotated[
    int | None, typer.Option("--seed", help="The pipeline's seed; each step's derives from it.")
]


# -- progress ------------------------------------------------------------------------------

_LOOK: dict[StepState, tuple[str, str]] = {
    StepState.WAITING: ("·", "dim"),
    StepState.RUNNING: ("", "cyan"),
    StepState.FINISHED: ("✓", "green"),
    StepState.CACHED: ("↺", "blue"),
    StepState.FAILED: ("✗", "red"),
    StepState.SKIPPED: ("⊘", "yellow"),
}


def _seconds(duration_s: float) -> str:
    if duration_s < 1:
        return f"{duration_s:.2f} s"
    if duration_s < 10:
        return f"{duration_s:.1f} s"
    if duration_s < 60:
        return f"{duration_s:.0f} s"
    minutes, seconds = divmod(int(duration_s), 60)
    return f"{minutes} min {seconds} s"


def _short(run_id: str | None) -> str:
    return "-" if run_id is None else run_id[:8]


@dataclass
class _Row:
    state: StepState = StepState.WAITING
    run_id: str | None = None
    duration_s: float | None = None
    started: float | None = None
    spinner: Spinner = field(default_factory=lambda: Spinner("dots", style="cyan"))


class StepProgress:
    """Steps' states as they change: a live table on a terminal, otherwise one line per change
    (which logs and tests can read)."""

    def __init__(self, out: Console, title: str, labels: Sequence[str] = ()) -> None:
        self.out = out
        self.title = title
        self.rows: dict[str, _Row] = {label: _Row() for label in labels}
        self.started = time.monotonic()
        self._live: Live | None = None

    def __enter__(self) -> StepProgress:
        self.started = time.monotonic()
        if self.out.is_terminal:
            self._live = Live(get_renderable=self._render, console=self.out, refresh_per_second=8)
            self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.stop()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def __call__(self, event: StepEvent) -> None:
        row = self.rows.setdefault(event.label, _Row())
        row.state = event.state
        if event.state is StepState.RUNNING:
            row.started = time.monotonic()
        row.run_id = event.run_id or row.run_id
        if event.duration_s is not None:
            row.duration_s = event.duration_s
        if self._live is None:
            self.out.print(_event_line(event), markup=False, highlight=False, soft_wrap=True)

    def counts(self) -> Counter[StepState]:
        return Counter(row.state for row in self.rows.values())

    def _render(self) -> RenderableType:
        view = Table(
            title=f"{self.title} · {_seconds(self.elapsed_s)}",
            title_justify="left",
            box=None,
            padding=(0, 2),
        )
        for column in ("step", "state", "time", "run"):
            view.add_column(column, no_wrap=True)
        for label, row in list(self.rows.items()):
            symbol, style = _LOOK[row.state]
            state: RenderableType = Text(f"{symbol} {row.state.value}", style=style)
            duration = row.duration_s
            if row.state is StepState.RUNNING:
                row.spinner.update(text=Text("running", style=style))
                state = row.spinner
                duration = None if row.started is None else time.monotonic() - row.started
            view.add_row(
                Text(clean(label), style="bold"),
                state,
                "" if duration is None else _seconds(duration),
                "" if row.run_id is None else _short(row.run_id),
            )
        return view


def _event_line(event: StepEvent) -> str:
    run = f"(run {_short(event.run_id)})"
    took = "" if event.duration_s is None else _seconds(event.duration_s)
    match event.state:
        case StepState.RUNNING:
            return f"step {event.label} running"
        case StepState.FINISHED:
            return f"step {event.label} finished in {took} {run}"
        case StepState.CACHED:
            return f"step {event.label} cached (reused run {_short(event.run_id)})"
        case StepState.FAILED:
            return f"step {event.label} failed after {took} {run}: {event.error}"
        case StepState.SKIPPED:
            return f"step {event.label} skipped: a step it reads from failed"
        case _:
            return f"step {event.label} {event.state.value}"


def _counts_line(counts: Counter[StepState]) -> str:
    executed = counts[StepState.FINISHED]
    return (
        f"{executed} executed, {counts[StepState.CACHED]} cached, "
        f"{counts[StepState.FAILED]} failed, {counts[StepState.SKIPPED]} skipped"
    )


def _fail(exc: LoopwiseError, as_json: bool) -> NoReturn:
    """The error on stderr as main() prints it, but never read as markup: tracebacks and
    annotations (``list[int]``) hold square brackets."""
    if as_json:
        print(json.dumps(exc.to_dict(), default=str), file=sys.stderr)
    else:
        err_console.print(
            Text.assemble(("Error: ", "red"), clean(exc.message)), highlight=False, soft_wrap=True
        )
    raise typer.Exit(1)


# -- loading -------------------------------------------------------------------------------


def _load(ref: str) -> Pipeline:
    # As uvicorn and flask do: `pkg.flows:training` imports from the current folder even when
    # the `loopwise` script's own folder, not the current one, is first on sys.path.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return sdk.load_pipeline(ref)


def _open_for_writing() -> None:
    """Running creates the project if it is new (reading commands do not); without ``-p`` it
    is the project the other commands would use (``open_context``)."""
    open_context(create=True)


# -- run and resume ------------------------------------------------------------------------


def _execute(
    pipeline: Pipeline,
    ref: str,
    graph: Graph | None,
    as_json: bool,
    **options: Any,
) -> None:
    """Run with a progress view, then the summary; a failed step exits 1 with its traceback."""
    labels = graph.order() if graph is not None else []
    progress = StepProgress(err_console if as_json else console, pipeline.name, labels)
    failure: PipelineFailedError | None = None
    with progress:
        try:
            run_id = sdk.run(pipeline, on_event=progress, **options).run_id
        except PipelineFailedError as exc:
            failure = exc
            run_id = str(exc.details.get("run_id", ""))
    counts = progress.counts()
    if as_json:
        print_json(
            {
                "pipeline": pipeline.name,
                "run_id": run_id,
                "status": "FINISHED" if failure is None else "FAILED",
                "params": None if graph is None else graph.params,
                "duration_s": round(progress.elapsed_s, 3),
                "steps": {
                    label: {"state": row.state, "run_id": row.run_id, "duration_s": row.duration_s}
                    for label, row in progress.rows.items()
                },
            }
        )
    else:
        mark = "[green]✓[/]" if failure is None else "[red]✗[/]"
        verb = "finished" if failure is None else "failed"
        console.print(
            f"{mark} Pipeline [bold]{safe(pipeline.name)}[/] {verb} in "
            f"{_seconds(progress.elapsed_s)}: run {run_id}\n  {_counts_line(counts)}",
            highlight=False,
        )
        then = f"pipeline show {ref}" if failure is None else f"pipeline resume {run_id}"
        console.print(
            f"Next:\n  {safe(command_hint('runs', 'show', run_id))}\n  {safe(command_hint(then))}",
            highlight=False,
            soft_wrap=True,
        )
    if failure is not None:
        _fail(failure, as_json)


@app.command("run")
def run_pipeline(
    ref: Annotated[str, typer.Argument(help=REF_HELP, show_default=False)],
    param: ParamOption = None,
    executor: ExecutorOption = ExecutorName.local,
    workers: WorkersOption = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Run every step, even those with a cached result.")
    ] = False,
    seed: SeedOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a pipeline: steps whose code, packages, inputs and params are unchanged are reused.

    Example: loopwise pipeline run flows.py:training --param C=0.5 --executor local
    """
    pipeline = _load(ref)
    params = pipeline.parse_params(param or [])
    graph = pipeline.build(params)  # a bad definition fails here, before any run is created
    _open_for_writing()
    _execute(
        pipeline,
        ref,
        graph,
        as_json,
        params=params,
        executor=executor.value,
        workers=workers,
        cache=not no_cache,
        seed=seed,
    )


@app.command("resume")
def resume(
    run_id: Annotated[
        str, typer.Argument(help="A pipeline run id (or a unique prefix).", show_default=False)
    ],
    executor: ExecutorOption = ExecutorName.local,
    workers: WorkersOption = None,
    as_json: JsonOption = False,
) -> None:
    """Continue a failed pipeline run with the same params and seed: its finished steps are
    reused and the rest run.

    Example: loopwise pipeline resume 3f2a1b2c
    """
    open_context()
    previous = lw.get_run(resolve_run_id(run_id))
    ref = previous.tags.get("loopwise.pipeline_ref")
    if previous.tags.get("loopwise.kind") != "pipeline" or ref is None:
        raise InvalidArgumentError(
            f"Run {previous.id} ({previous.name!r}) is not a pipeline run, so there is nothing "
            f"to resume. Pass an id that `{command_hint('pipeline', 'list')}` shows.",
            parameter="run_id",
        )
    pipeline = _load(ref)
    # Without a record (the run was killed) run() itself says why it cannot resume.
    record = run_record(previous) or {}
    graph = pipeline.build(record["params"]) if record else None
    if graph is not None and not as_json:
        console.print(
            f"Resuming {safe(pipeline.name)} run {previous.id} "
            f"({safe(params_text(graph.params))}; seed {safe(record.get('seed', 0))})",
            highlight=False,
            soft_wrap=True,
        )
    _execute(
        pipeline,
        ref,
        graph,
        as_json,
        executor=executor.value,
        workers=workers,
        resume=previous.id,
    )


# -- show ----------------------------------------------------------------------------------


_STYLES: dict[TextRole, str] = {
    "pipeline": "bold",
    "step": "bold cyan",
    "note": "dim",
    "constant": "yellow",
    "upstream": "green",
    "plain": "",
}


def _print_text(graph: Graph) -> None:
    out = Text()
    for text, role in graph.text_parts():
        out.append(text, style=_STYLES[role])
    console.print(out, highlight=False, soft_wrap=True, end="")


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help=REF_HELP, show_default=False)],
    param: ParamOption = None,
    format: Annotated[
        GraphFormat,
        typer.Option("--format", "-f", help="text, or a mermaid/dot graph to paste into docs."),
    ] = GraphFormat.text,
    as_json: JsonOption = False,
) -> None:
    """Print the pipeline's DAG built with these params: each step's inputs (where from) and
    outputs (with their types). Checks the definition; runs nothing.

    Example: loopwise pipeline show flows.py:training --format mermaid
    """
    pipeline = _load(ref)
    graph = pipeline.build(pipeline.parse_params(param or []))
    if as_json:
        print_json(graph.to_dict())
    elif format is GraphFormat.text:
        _print_text(graph)
    else:
        print(graph.to_mermaid() if format is GraphFormat.mermaid else graph.to_dot())


# -- sweep ---------------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    """A metric a point did not log, or logged as NaN (JSON has no NaN)."""
    return not isinstance(value, int | float) or math.isnan(value)


@app.command("sweep")
def sweep(
    ref: Annotated[str, typer.Argument(help=REF_HELP, show_default=False)],
    grid: Annotated[
        list[str] | None,
        typer.Option("--grid", help="A param's values, key=v1,v2,… (repeatable)."),
    ] = None,
    random_: Annotated[
        list[str] | None,
        typer.Option(
            "--random",
            help="A param's range, key=uniform(a,b), loguniform(a,b), int(a,b) or "
            "choice(x,y,…) (repeatable).",
        ),
    ] = None,
    samples: Annotated[
        int, typer.Option("--samples", "-n", min=1, help="Random draws (per grid point).")
    ] = 10,
    param: ParamOption = None,
    executor: ExecutorOption = ExecutorName.local,
    workers: WorkersOption = None,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the draws and every point.")] = 0,
    metric: Annotated[
        str | None,
        typer.Option("--metric", "-m", help="Sort by this pipeline metric, e.g. evaluate.auc."),
    ] = None,
    mode: Annotated[Mode, typer.Option("--mode", help="Whether higher or lower is better.")] = (
        Mode.max
    ),
    as_json: JsonOption = False,
) -> None:
    """Run a pipeline once per point of a grid or random search, all points as one DAG (steps
    that do not depend on the swept params run once).

    Example: loopwise pipeline sweep flows.py:training --grid C=0.1,1,10 --metric evaluate.auc
    """
    pipeline = _load(ref)
    fixed = pipeline.parse_params(param or [])
    chosen_grid = parse_grid(pipeline, grid or [])
    space = parse_space(random_ or [])
    if not chosen_grid and not space:
        raise InvalidArgumentError(
            "A sweep needs the values to try: --grid key=v1,v2,… and/or --random key=DIST "
            "(e.g. --random C=loguniform(1e-3,10) --samples 8).",
            parameter="grid",
        )
    _open_for_writing()
    progress = StepProgress(err_console if as_json else console, f"sweep {pipeline.name}")
    with progress:
        result = sdk.sweep(
            pipeline,
            grid=chosen_grid,
            space=space,
            samples=samples if space else 0,
            params=fixed,
            seed=seed,
            executor=executor.value,
            workers=workers,
            on_event=progress,
        )
    ranked = result.ranked(metric, mode.value)
    metrics = sorted({k for point in ranked for k in point.metrics})
    best_id = None
    if metric is not None and metric in metrics:
        best_id = result.best(metric, mode.value).run_id
    swept = [*chosen_grid, *space]
    shown = [metric] if metric in metrics else metrics[:3]
    if as_json:
        print_json(
            {
                "sweep_id": result.sweep_id,
                "pipeline": pipeline.name,
                "best": best_id,
                "points": [
                    {
                        "run_id": p.run_id,
                        "status": p.status,
                        "params": p.params,
                        "metrics": {k: v for k, v in p.metrics.items() if not _missing(v)},
                    }
                    for p in ranked
                ],
            }
        )
    else:
        table(
            f"sweep {result.sweep_id}: {len(ranked)} point(s) of {pipeline.name}",
            ["", "run", "status", *swept, *shown],
            [
                [
                    "★" if p.run_id == best_id else "",
                    _short(p.run_id),
                    p.status,
                    *(json.dumps(p.params.get(k), default=str) for k in swept),
                    *(p.metrics.get(k, math.nan) for k in shown),
                ]
                for p in ranked
            ],
        )
        console.print(
            f"{_counts_line(progress.counts())} (steps of all points, shared steps once)\n"
            f"Compare: {safe(command_hint('runs', 'compare', *(_short(p.run_id) for p in ranked)))}",
            highlight=False,
            soft_wrap=True,
        )
    if metric is not None and metric not in metrics:
        result.best(metric, mode.value)  # raises, naming the metrics the points did log
    failure = result.failure()
    if failure is not None:
        _fail(failure, as_json)


# -- list ----------------------------------------------------------------------------------


@app.command("list")
def list_pipeline_runs(
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="Only runs of this pipeline (its name).")
    ] = None,
    max_results: Annotated[int, typer.Option("--max", min=1, help="At most this many runs.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """List recent pipeline runs of the project, newest first.

    Example: loopwise pipeline list --pipeline training
    """
    open_context()
    query = "tags.`loopwise.kind` = 'pipeline'"
    if pipeline is not None:
        query += f" and tags.`loopwise.pipeline` = '{pipeline}'"
    runs = lw.search_runs(query, max_results=max_results)
    if as_json:
        print_json(runs)
        return
    rows = [
        [
            r.id[:8],
            r.tags.get("loopwise.pipeline", r.name),
            r.status.value,
            fmt_ms(r.start_ms)[5:16],
            None if r.duration_s is None else _seconds(r.duration_s),
            ", ".join(f"{k}={v}" for k, v in sorted(r.params.items()))[:60],
        ]
        for r in runs
    ]
    table(
        f"{len(runs)} pipeline run(s)",
        ["id", "pipeline", "status", "started", "took", "params"],
        rows,
    )
