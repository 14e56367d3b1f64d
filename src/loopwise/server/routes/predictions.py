"""The prediction log's segment index: thin calls to the store (the Parquet files are blobs)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from loopwise.server.auth import Caller, Permission, caller, permission
from loopwise.server.routes.common import BlobAccessDep, StoreDep
from loopwise.server.schemas import (
    AddPredictionSegments,
    Count,
    PredictionSegmentOut,
    Text,
)
from loopwise.store import PredictionSegment

router = APIRouter()
CallerDep = Annotated[Caller, Depends(caller)]
READ = permission(Permission.READ)
WRITE = permission(Permission.WRITE)


@router.post("/prediction-segments", status_code=204, tags=["predictions"], openapi_extra=WRITE)
def add_prediction_segments(
    body: AddPredictionSegments, store: StoreDep, who: CallerDep, access: BlobAccessDep
) -> Response:
    """Index uploaded Parquet segments of the prediction log (of one or more projects).

    A client draining its prediction spool sends ``spool_id`` and ``upto_seq``: a batch that
    the spool already reached is ignored, so replays after a crash index each prediction once.
    """
    who.check(Permission.WRITE)
    for project in {s.project for s in body.segments}:
        who.check(Permission.WRITE, project)
    access.check_reference(store, who, {s.digest for s in body.segments})
    if body.spool_id is not None and who.project is not None:  # another project's: a 404
        store.spool_progress(body.spool_id, who.project)
    segments = [
        PredictionSegment(
            s.project,
            s.deployment,
            s.hour_ms,
            s.digest,
            s.num_rows,
            s.min_timestamp_ms,
            s.max_timestamp_ms,
            s.size_bytes,
        )
        for s in body.segments
    ]
    store.add_prediction_segments(segments, body.spool_id, body.upto_seq)
    return Response(status_code=204)


@router.get(
    "/projects/{project}/prediction-segments",
    response_model=list[PredictionSegmentOut],
    tags=["predictions"],
    openapi_extra=READ,
)
def list_prediction_segments(
    project: Text,
    store: StoreDep,
    who: CallerDep,
    deployment: Annotated[Text | None, Query()] = None,
    start_ms: Annotated[Count | None, Query()] = None,
    end_ms: Annotated[Count | None, Query()] = None,
) -> list[PredictionSegment]:
    """Segments that may hold predictions with ``start_ms <= timestamp_ms < end_ms``."""
    who.check(Permission.READ, project)
    return store.list_prediction_segments(project, deployment, start_ms, end_ms)
