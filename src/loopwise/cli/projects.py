"""``loopwise projects``: list a store's projects and create new ones.

``create`` of a name that exists already says so and exits 0, changing nothing: scripts that
set a store up can run it again.
"""

from __future__ import annotations

from typing import Annotated

import typer

from loopwise.audit.stores import open_existing_store
from loopwise.cli.common import JsonOption, State, command_hint
from loopwise.cli.output import console, fmt_ms, print_json, safe, table
from loopwise.store import open_store
from loopwise.tracking import projects

__all__ = ["app"]

app = typer.Typer(help="List the store's projects and create new ones.", no_args_is_help=True)


@app.command("list")
def list_projects(as_json: JsonOption = False) -> None:
    """List the store's projects: when each was created, how many models and deployments it has.

    Example: loopwise projects list --json
    """
    with open_existing_store(State.uri) as store:
        found = projects.list_projects(store)
    if as_json:
        print_json(found)
        return
    rows = [[p.name, fmt_ms(p.created_ms), p.models, p.deployments] for p in found]
    table(f"{len(found)} project(s)", ["project", "created", "models", "deployments"], rows)
    if not found:
        console.print(f"Create one with: {safe(command_hint('projects', 'create', 'NAME'))}")


@app.command("create")
def create_project(
    name: Annotated[str, typer.Argument(help="The project's name: letters, digits, _ - or '.'.")],
    as_json: JsonOption = False,
) -> None:
    """Create a project (and the store, if it is a new folder). A name that exists already is
    left as it is, with a message and exit status 0, so set-up scripts can run it again.

    Example: loopwise projects create churn
    """
    store = open_store(State.uri)  # a new folder store is created, as lw.init would
    try:
        outcome = projects.create_project(name, store)
    finally:
        store.close()
    project = outcome.project
    if as_json:
        print_json({"name": project.name, "created_ms": project.created_ms, "new": outcome.created})
        return
    if outcome.created:
        console.print(f"Created project [bold]{safe(project.name)}[/].", highlight=False)
    else:
        console.print(
            f"Project [bold]{safe(project.name)}[/] exists already (created "
            f"{fmt_ms(project.created_ms)}): nothing changed.",
            highlight=False,
        )
    console.print(
        f"Next: {safe(command_hint('runs', 'list', project=project.name))}",
        highlight=False,
        soft_wrap=True,
    )
