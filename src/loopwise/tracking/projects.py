"""Projects as people list and create them: each with what it holds, and creation that says
whether the project is new (a project is otherwise created on first use by ``lw.init``)."""

from __future__ import annotations

from dataclasses import dataclass

from loopwise.context import current
from loopwise.store import Store
from loopwise.store.checks import check_name
from loopwise.store.entities import Project

__all__ = ["ProjectCreated", "ProjectSummary", "create_project", "list_projects"]


@dataclass(frozen=True)
class ProjectSummary:
    """A project and how much it holds (models and deployments: one cheap query each)."""

    name: str
    created_ms: int
    models: int
    deployments: int


@dataclass(frozen=True)
class ProjectCreated:
    """The project asked for, and whether this call created it (False: it existed already)."""

    project: Project
    created: bool


def list_projects(store: Store | None = None) -> list[ProjectSummary]:
    """Every project of ``store`` (default: the current one), by name."""
    target = store if store is not None else current().store
    return [
        ProjectSummary(
            name=p.name,
            created_ms=p.created_ms,
            models=len(target.list_models(p.name)),
            deployments=len(target.list_deployments(p.name)),
        )
        for p in target.list_projects()
    ]


def create_project(name: str, store: Store | None = None) -> ProjectCreated:
    """Create the project ``name`` in ``store`` (default: the current one); an existing one is
    left as it is and answered with ``created=False``. A name that is not a valid project name
    is an InvalidArgumentError that says what a name may hold."""
    check_name(name, "project")
    target = store if store is not None else current().store
    existed = any(p.name == name for p in target.list_projects())
    return ProjectCreated(project=target.get_or_create_project(name), created=not existed)
