"""Options and set-up shared by every CLI command."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

import loopwise as lw

if TYPE_CHECKING:
    from loopwise.context import Context

__all__ = ["ExecutorName", "JsonOption", "State", "open_context"]

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


def open_context() -> Context:
    """The store and project the command reads; an unknown project is an error, not created."""
    return lw.init(project=State.project, uri=State.uri, create=False)
