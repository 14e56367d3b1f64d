"""The ``loopwise`` command: a thin layer over the SDK."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape

from loopwise.cli import (
    access,
    autopilot,
    data,
    db,
    deploy,
    models,
    monitor,
    pipelines,
    projects,
    runs,
)
from loopwise.cli.common import ExecutorName, State
from loopwise.cli.output import console, err_console
from loopwise.cli.reproduce import reproduce
from loopwise.cli.serve import serve
from loopwise.cli.server import server
from loopwise.context import remember_project
from loopwise.errors import LoopwiseError

__all__ = ["app", "main"]

app = typer.Typer(
    name="loopwise",
    help="Loopwise: versioned data, tracked training, a model registry — the ML loop in one tool.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(projects.app, name="projects")
app.add_typer(runs.app, name="runs")
app.add_typer(data.app, name="data")
app.add_typer(models.app, name="models")
app.add_typer(deploy.app, name="deploy")
app.add_typer(autopilot.app, name="autopilot")
app.add_typer(db.app, name="db")
app.add_typer(monitor.app, name="monitor")
app.add_typer(pipelines.app, name="pipeline")
app.add_typer(access.token_app, name="token")
app.add_typer(access.audit_app, name="audit")
app.command("server")(server)
app.command("serve")(serve)
app.command("reproduce")(reproduce)


def _version(value: bool) -> None:
    if value:
        from loopwise import __version__

        console.print(f"loopwise {__version__}")
        raise typer.Exit()


@app.callback()
def global_options(
    uri: Annotated[
        str | None,
        typer.Option(
            "--uri",
            envvar="LOOPWISE_URI",
            help="Store: a folder (default ./.loopwise), a database URL, or a Loopwise server's "
            "http(s):// URL (with LOOPWISE_TOKEN).",
        ),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option(
            "--project",
            "-p",
            envvar="LOOPWISE_PROJECT",
            help="Project. Default: the store's only project, else the one last named on this "
            "store (a folder store remembers it), else 'default'.",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    State.uri = uri
    State.project = project


@app.command("demo")
def demo(
    quick: Annotated[
        bool, typer.Option("--quick", help="A small sample, for a fast look (about 10 s).")
    ] = False,
    executor: Annotated[
        ExecutorName,
        typer.Option(
            "--executor", help="Where the training pipeline's steps run: local, ray or inline."
        ),
    ] = ExecutorName.local,
) -> None:
    """Run the main demo on the bundled ACS data: the training pipeline (load, validate, split,
    train candidates in parallel, evaluate by slice, register), then serving and monitoring."""
    from loopwise.examples.demo import run_demo

    project = State.project or "employment"
    run_demo(uri=State.uri, project=project, quick=quick, console=console, executor=executor.value)
    remember_project(State.uri, project)  # the commands its "Next:" names then need no -p


def main() -> None:
    """Entry point: usage errors are Typer's; Loopwise errors become one clear message and exit 1."""
    try:
        app()
    except LoopwiseError as exc:
        if "--json" in sys.argv:
            print(json.dumps(exc.to_dict(), default=str), file=sys.stderr)
        else:
            err_console.print(f"[red]Error:[/] {escape(exc.message)}", highlight=False)
        sys.exit(1)
