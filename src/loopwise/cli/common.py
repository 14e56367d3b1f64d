"""Options and set-up shared by every CLI command: the store and project a command opens, and
the ``loopwise …`` lines that hints print, with that store and project so they can be pasted."""

from __future__ import annotations

import os
import shlex
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from loopwise.context import init_existing, opened
from loopwise.errors import NotFoundError, not_found

if TYPE_CHECKING:
    from loopwise.context import Context

__all__ = ["ExecutorName", "JsonOption", "State", "command_hint", "open_context"]

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")
]


class ExecutorName(StrEnum):
    """Where a pipeline's steps run (``loopwise.pipelines.run``'s ``executor``)."""

    local = "local"
    ray = "ray"
    inline = "inline"


class State:
    """Global options given before the command (``loopwise --uri … --project … runs list``)."""

    uri: str | None = None
    project: str | None = None


def open_context(*, create: bool = False) -> Context:
    """The store and project the command works on: ``--project`` (or ``LOOPWISE_PROJECT``),
    else the store's only project, else the one last named on this store, else 'default'.

    An unknown project is an error that lists the existing ones and says how to pick or create
    one from the command line; ``create`` (commands that write) creates it instead.
    """
    try:
        return init_existing(State.project, State.uri, create=create)
    except NotFoundError as exc:
        if exc.details.get("kind") != "project":
            raise
        raise _unknown_project(exc) from None


def _unknown_project(exc: NotFoundError) -> NotFoundError:
    """The store's "no such project" with the command line's fixes instead of the SDK's."""
    wanted = str(exc.details.get("wanted"))
    create = command_hint("projects", "create", shlex.quote(wanted), project=False)
    return not_found(
        "project",
        wanted,
        exc.details.get("existing") or (),
        hint=f"Name one with -p NAME (or LOOPWISE_PROJECT=NAME), or create it: {create}",
    )


def command_hint(*words: str, project: bool | str = True) -> str:
    """``loopwise WORDS`` as a hint prints it, ready to paste: with ``--uri`` when the store was
    given on the command line (not through LOOPWISE_URI, which the next command sees too), and
    ``-p PROJECT`` for the project this command used, or for ``project`` when it is a name
    (False: none, for commands that span the store)."""
    line = ["loopwise"]
    if State.uri is not None and State.uri != os.environ.get("LOOPWISE_URI"):
        line += ["--uri", shlex.quote(State.uri)]
    current = opened()
    chosen = project if isinstance(project, str) else current.project if current else State.project
    if project is not False and chosen:
        line += ["-p", shlex.quote(chosen)]
    return " ".join([*line, *words])
