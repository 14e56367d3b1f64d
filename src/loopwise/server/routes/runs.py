"""Projects, runs, params, tags, metrics and run artifacts: thin calls to the store."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from loopwise.server.auth import Caller, Permission, caller, permission
from loopwise.server.routes.common import BlobAccessDep, StoreDep, run_project
from loopwise.server.schemas import (
    ArtifactFileOut,
    CreateProject,
    CreateRun,
    EndRun,
    LogMetrics,
    LogParams,
    MetricOut,
    ProjectOut,
    RecordArtifacts,
    RunOut,
    SearchRuns,
    SetTags,
    SpoolProgress,
    Text,
)
from loopwise.store import ArtifactFile, Metric, MetricEntry, Project, Run

router = APIRouter()
CallerDep = Annotated[Caller, Depends(caller)]
READ = permission(Permission.READ)
WRITE = permission(Permission.WRITE)


# -- projects ---------------------------------------------------------------------------------------
@router.get("/projects", response_model=list[ProjectOut], tags=["projects"], openapi_extra=READ)
def list_projects(store: StoreDep, who: CallerDep) -> list[Project]:
    """Every project the token may see."""
    who.check(Permission.READ)
    return [p for p in store.list_projects() if who.may_see(p.name)]


@router.post("/projects", response_model=ProjectOut, tags=["projects"], openapi_extra=WRITE)
def create_project(body: CreateProject, store: StoreDep, who: CallerDep) -> Project:
    """Create a project, or return it if it exists."""
    who.check(Permission.WRITE, body.name)
    return store.get_or_create_project(body.name)


@router.get("/projects/{project}", response_model=ProjectOut, tags=["projects"], openapi_extra=READ)
def get_project(project: Text, store: StoreDep, who: CallerDep) -> Project:
    who.check(Permission.READ, project)
    return store.get_project(project)


# -- runs -----------------------------------------------------------------------------------------
@router.post("/projects/{project}/runs", response_model=RunOut, tags=["runs"], openapi_extra=WRITE)
def create_run(project: Text, body: CreateRun, store: StoreDep, who: CallerDep) -> Run:
    who.check(Permission.WRITE, project)
    return store.create_run(project, body.name, body.tags, body.environment)


@router.post(
    "/projects/{project}/runs/search",
    response_model=list[RunOut],
    tags=["runs"],
    openapi_extra=READ,
)
def search_runs(project: Text, body: SearchRuns, store: StoreDep, who: CallerDep) -> list[Run]:
    """Runs matching a filter such as ``metrics.auc > 0.8 and params.model = 'hgb'``."""
    who.check(Permission.READ, project)
    return store.search_runs(project, body.filter, body.order_by, body.max_results)


@router.get("/runs/{run_id}", response_model=RunOut, tags=["runs"], openapi_extra=READ)
def get_run(run_id: Text, store: StoreDep, who: CallerDep) -> Run:
    run = store.get_run(run_id)
    who.check(Permission.READ, run.project)
    return run


@router.post("/runs/{run_id}/end", response_model=RunOut, tags=["runs"], openapi_extra=WRITE)
def end_run(run_id: Text, body: EndRun, store: StoreDep, who: CallerDep) -> Run:
    who.check(Permission.WRITE, run_project(store, run_id))
    return store.end_run(run_id, body.status)


@router.post("/runs/{run_id}/tags", status_code=204, tags=["runs"], openapi_extra=WRITE)
def set_tags(run_id: Text, body: SetTags, store: StoreDep, who: CallerDep) -> Response:
    who.check(Permission.WRITE, run_project(store, run_id))
    store.set_tags(run_id, body.tags)
    return Response(status_code=204)


@router.post("/runs/{run_id}/params", status_code=204, tags=["runs"], openapi_extra=WRITE)
def log_params(run_id: Text, body: LogParams, store: StoreDep, who: CallerDep) -> Response:
    """Params are write-once: a different value for a logged key is a 409."""
    who.check(Permission.WRITE, run_project(store, run_id))
    store.log_params(run_id, body.params)
    return Response(status_code=204)


# -- metrics --------------------------------------------------------------------------------------
@router.post("/metrics", status_code=204, tags=["metrics"], openapi_extra=WRITE)
def log_metrics(body: LogMetrics, store: StoreDep, who: CallerDep) -> Response:
    """Write metric values (of one or more runs); durable when the response arrives.

    A client draining its local spool sends ``spool_id`` and ``upto_seq``: a batch that the
    spool already reached is ignored, so replays after a crash write each value once.
    """
    who.check(Permission.WRITE)
    for run_id in {e.run_id for e in body.entries}:
        who.check(Permission.WRITE, run_project(store, run_id))
    entries = [MetricEntry(e.run_id, e.key, e.value, e.step, e.timestamp_ms) for e in body.entries]
    if body.spool_id is None:
        store.log_metrics(entries)
    else:
        if who.project is not None:  # another project's spool: a 404
            store.spool_progress(body.spool_id, who.project)
        store.write_spooled_metrics(entries, body.spool_id, body.upto_seq)
    return Response(status_code=204)


@router.get(
    "/runs/{run_id}/metrics/history",
    response_model=list[MetricOut],
    tags=["metrics"],
    openapi_extra=READ,
)
def get_metric_history(
    run_id: Text, key: Annotated[Text, Query()], store: StoreDep, who: CallerDep
) -> list[Metric]:
    who.check(Permission.READ, run_project(store, run_id))
    return store.get_metric_history(run_id, key)


@router.get(
    "/spools/{spool_id}", response_model=SpoolProgress, tags=["metrics"], openapi_extra=WRITE
)
def spool_progress(
    spool_id: Text,
    store: StoreDep,
    who: CallerDep,
    project: Annotated[Text | None, Query()] = None,
) -> SpoolProgress:
    """How far a client's spool has been written (0 if not at all); a project-scoped token
    sees only its project's spools."""
    who.check(Permission.WRITE, project)
    progress = store.spool_progress(spool_id, who.project or project)
    return SpoolProgress(spool_id=spool_id, committed_seq=progress)


@router.delete("/spools/{spool_id}", status_code=204, tags=["metrics"], openapi_extra=WRITE)
def forget_spool(
    spool_id: Text,
    store: StoreDep,
    who: CallerDep,
    project: Annotated[Text | None, Query()] = None,
) -> Response:
    """Drop a spool's progress once its file is gone (audited); only a project's own spools
    for a project-scoped token."""
    who.check(Permission.WRITE, project)
    store.forget_spool(spool_id, who.project or project)
    return Response(status_code=204)


# -- run artifacts --------------------------------------------------------------------------------
@router.post("/runs/{run_id}/artifacts", status_code=204, tags=["artifacts"], openapi_extra=WRITE)
def record_artifacts(
    run_id: Text, body: RecordArtifacts, store: StoreDep, who: CallerDep, access: BlobAccessDep
) -> Response:
    """Add uploaded blobs to the run's artifact tree under the given paths."""
    who.check(Permission.WRITE, run_project(store, run_id))
    access.check_reference(store, who, {f.digest for f in body.files})
    store.record_artifacts(
        run_id, [ArtifactFile(f.path, f.digest, f.size_bytes) for f in body.files]
    )
    return Response(status_code=204)


@router.get(
    "/runs/{run_id}/artifacts",
    response_model=list[ArtifactFileOut],
    tags=["artifacts"],
    openapi_extra=READ,
)
def list_artifacts(
    run_id: Text, store: StoreDep, who: CallerDep, prefix: Text = ""
) -> list[ArtifactFile]:
    who.check(Permission.READ, run_project(store, run_id))
    return store.list_artifacts(run_id, prefix)
