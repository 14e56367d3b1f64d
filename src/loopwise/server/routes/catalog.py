"""Dataset versions, lineage, the model registry and aliases: thin calls to the store."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from loopwise.errors import UnsafeModelError
from loopwise.server.auth import Caller, Permission, caller, permission
from loopwise.server.routes.common import BlobAccessDep, StoreDep, run_project
from loopwise.server.schemas import (
    AliasMove,
    CreateDatasetVersion,
    CreateModelVersion,
    DatasetSuiteOut,
    DatasetVersionCreated,
    DatasetVersionOut,
    Id,
    LinkDataset,
    ModelVersionOut,
    RegisteredModelOut,
    SetAlias,
    SetDatasetProfile,
    SetDatasetSuite,
    Text,
)
from loopwise.store import DatasetSuite, DatasetVersion, ModelVersion, RegisteredModel
from loopwise.store.checks import PICKLE_FLAVOURS

router = APIRouter()
CallerDep = Annotated[Caller, Depends(caller)]
READ = permission(Permission.READ)
WRITE = permission(Permission.WRITE)


# -- datasets -------------------------------------------------------------------------------------
@router.post(
    "/projects/{project}/datasets/{name}/versions",
    response_model=DatasetVersionCreated,
    tags=["datasets"],
    openapi_extra=WRITE,
)
def create_dataset_version(
    project: Text,
    name: Text,
    body: CreateDatasetVersion,
    store: StoreDep,
    who: CallerDep,
    access: BlobAccessDep,
) -> DatasetVersionCreated:
    """Register a version whose Parquet blob was uploaded; the same content gives the same one."""
    who.check(Permission.WRITE, project)
    referenced = [body.artifact_digest]
    if body.profile_digest is not None:
        referenced.append(body.profile_digest)
    access.check_reference(store, who, referenced)
    version, created = store.create_dataset_version(
        project,
        name,
        content_hash=body.content_hash,
        artifact_digest=body.artifact_digest,
        num_rows=body.num_rows,
        schema=body.schema_,
        split=body.split,
        description=body.description,
        profile_digest=body.profile_digest,
    )
    return DatasetVersionCreated(
        version=DatasetVersionOut.model_validate(version, from_attributes=True), created=created
    )


@router.get(
    "/projects/{project}/datasets",
    response_model=list[DatasetVersionOut],
    tags=["datasets"],
    openapi_extra=READ,
)
def list_dataset_versions(
    project: Text, store: StoreDep, who: CallerDep, name: Text | None = None
) -> list[DatasetVersion]:
    who.check(Permission.READ, project)
    return store.list_dataset_versions(project, name)


@router.get(
    "/projects/{project}/datasets/{name}/latest",
    response_model=DatasetVersionOut,
    tags=["datasets"],
    openapi_extra=READ,
)
def get_latest_dataset_version(
    project: Text, name: Text, store: StoreDep, who: CallerDep
) -> DatasetVersion:
    who.check(Permission.READ, project)
    return store.get_dataset_version(project, name)


@router.get(
    "/projects/{project}/datasets/{name}/versions/{version}",
    response_model=DatasetVersionOut,
    tags=["datasets"],
    openapi_extra=READ,
)
def get_dataset_version(
    project: Text, name: Text, version: Id, store: StoreDep, who: CallerDep
) -> DatasetVersion:
    who.check(Permission.READ, project)
    return store.get_dataset_version(project, name, version)


@router.put(
    "/projects/{project}/datasets/{name}/versions/{version}/profile",
    response_model=DatasetVersionOut,
    tags=["datasets"],
    openapi_extra=WRITE,
)
def set_dataset_profile(
    project: Text,
    name: Text,
    version: Id,
    body: SetDatasetProfile,
    store: StoreDep,
    who: CallerDep,
    access: BlobAccessDep,
) -> DatasetVersion:
    """Give a version logged before profiles existed its profile (whose blob was uploaded)."""
    who.check(Permission.WRITE, project)
    access.check_reference(store, who, [body.profile_digest])
    return store.set_dataset_profile(project, name, version, body.profile_digest)


@router.get(
    "/projects/{project}/datasets/{name}/suite",
    response_model=DatasetSuiteOut | None,
    tags=["datasets"],
    openapi_extra=READ,
)
def get_dataset_suite(
    project: Text, name: Text, store: StoreDep, who: CallerDep
) -> DatasetSuite | None:
    """The validation suite attached to a dataset name, or null."""
    who.check(Permission.READ, project)
    return store.get_dataset_suite(project, name)


@router.put(
    "/projects/{project}/datasets/{name}/suite",
    response_model=DatasetSuiteOut,
    tags=["datasets"],
    openapi_extra=WRITE,
)
def set_dataset_suite(
    project: Text, name: Text, body: SetDatasetSuite, store: StoreDep, who: CallerDep
) -> DatasetSuite:
    """Attach a validation suite to a dataset name, replacing the one before."""
    who.check(Permission.WRITE, project)
    return store.set_dataset_suite(project, name, body.suite, body.on_failure)


@router.delete(
    "/projects/{project}/datasets/{name}/suite",
    status_code=204,
    tags=["datasets"],
    openapi_extra=WRITE,
)
def delete_dataset_suite(project: Text, name: Text, store: StoreDep, who: CallerDep) -> Response:
    who.check(Permission.WRITE, project)
    store.delete_dataset_suite(project, name)
    return Response(status_code=204)


@router.post("/runs/{run_id}/datasets", status_code=204, tags=["datasets"], openapi_extra=WRITE)
def link_dataset(run_id: Text, body: LinkDataset, store: StoreDep, who: CallerDep) -> Response:
    """Record that a run used (or produced) a dataset version."""
    who.check(Permission.WRITE, run_project(store, run_id))
    store.link_dataset(run_id, body.dataset_version_id, body.role)
    return Response(status_code=204)


@router.get(
    "/runs/{run_id}/datasets",
    response_model=list[DatasetVersionOut],
    tags=["datasets"],
    openapi_extra=READ,
)
def run_datasets(run_id: Text, store: StoreDep, who: CallerDep) -> list[DatasetVersion]:
    who.check(Permission.READ, run_project(store, run_id))
    return [d for d in store.run_datasets(run_id) if who.may_see(d.project)]


@router.get(
    "/dataset-versions/{dataset_version_id}/runs",
    response_model=list[str],
    tags=["datasets"],
    openapi_extra=READ,
)
def dataset_runs(dataset_version_id: Id, store: StoreDep, who: CallerDep) -> list[str]:
    """Ids of the runs that used a dataset version (those the token may see)."""
    who.check(Permission.READ)
    return [r for r in store.dataset_runs(dataset_version_id) if who.may_see(run_project(store, r))]


# -- models ---------------------------------------------------------------------------------------
@router.post(
    "/projects/{project}/models/{name}/versions",
    response_model=ModelVersionOut,
    tags=["models"],
    openapi_extra=WRITE,
)
def create_model_version(
    project: Text,
    name: Text,
    body: CreateModelVersion,
    store: StoreDep,
    who: CallerDep,
    access: BlobAccessDep,
    request: Request,
) -> ModelVersion:
    """Register the next version of a model whose files (a manifest blob) were uploaded.

    Versions stored with pickle are refused unless the server was started with
    ``--accept-pickle-models`` (the store refuses flavours no loader knows)."""
    who.check(Permission.WRITE, project)
    access.check_reference(store, who, [], manifest=body.artifact_digest)
    if body.flavour in PICKLE_FLAVOURS and not request.app.state.accept_pickle_models:
        raise UnsafeModelError(
            f"This server does not register models stored with pickle (flavour "
            f"{body.flavour!r}): loading one runs the code in it. Save the model in a safe "
            "flavour (sklearn, xgboost, lightgbm, onnx), or ask the server's operator to "
            "accept pickles with `loopwise server --accept-pickle-models`.",
            flavour=body.flavour,
        )
    return store.create_model_version(
        project,
        name,
        flavour=body.flavour,
        artifact_digest=body.artifact_digest,
        run_id=body.run_id,
        signature=body.signature,
        metadata=body.metadata,
        description=body.description,
    )


@router.get(
    "/projects/{project}/models",
    response_model=list[RegisteredModelOut],
    tags=["models"],
    openapi_extra=READ,
)
def list_models(project: Text, store: StoreDep, who: CallerDep) -> list[RegisteredModel]:
    who.check(Permission.READ, project)
    return store.list_models(project)


@router.get(
    "/projects/{project}/models/{name}/versions",
    response_model=list[ModelVersionOut],
    tags=["models"],
    openapi_extra=READ,
)
def list_model_versions(
    project: Text, name: Text, store: StoreDep, who: CallerDep
) -> list[ModelVersion]:
    who.check(Permission.READ, project)
    return store.list_model_versions(project, name)


@router.get(
    "/projects/{project}/models/{name}/versions/{version}",
    response_model=ModelVersionOut,
    tags=["models"],
    openapi_extra=READ,
)
def get_model_version(
    project: Text, name: Text, version: Id, store: StoreDep, who: CallerDep
) -> ModelVersion:
    who.check(Permission.READ, project)
    return store.get_model_version(project, name, version)


@router.get(
    "/projects/{project}/models/{name}/aliases/{alias}",
    response_model=AliasMove,
    tags=["models"],
    openapi_extra=READ,
)
def resolve_alias(
    project: Text, name: Text, alias: Text, store: StoreDep, who: CallerDep
) -> AliasMove:
    who.check(Permission.READ, project)
    return AliasMove(alias=alias, version=store.resolve_alias(project, name, alias), previous=None)


@router.put(
    "/projects/{project}/models/{name}/aliases/{alias}",
    response_model=AliasMove,
    tags=["models"],
    openapi_extra=WRITE,
)
def set_alias(
    project: Text, name: Text, alias: Text, body: SetAlias, store: StoreDep, who: CallerDep
) -> AliasMove:
    """Point an alias at a version atomically; ``previous`` is where it pointed before."""
    who.check(Permission.WRITE, project)
    previous = store.set_alias(project, name, alias, body.version)
    return AliasMove(alias=alias, version=body.version, previous=previous)


@router.delete(
    "/projects/{project}/models/{name}/aliases/{alias}",
    response_model=AliasMove,
    tags=["models"],
    openapi_extra=WRITE,
)
def delete_alias(
    project: Text, name: Text, alias: Text, store: StoreDep, who: CallerDep
) -> AliasMove:
    who.check(Permission.WRITE, project)
    previous = store.delete_alias(project, name, alias)
    return AliasMove(alias=alias, version=previous, previous=previous)
