"""The remote backend's prediction log index: ``Store`` over the REST API (the Parquet bytes are
blobs, uploaded through ``RemoteArtifactStore``)."""

from __future__ import annotations

from collections.abc import Sequence

from loopwise.store.codec import decode, encode
from loopwise.store.entities import PredictionSegment
from loopwise.store.remote.client import RemoteCore, segment

__all__ = ["RemotePredictions"]


class RemotePredictions(RemoteCore):
    def _add_prediction_segments(
        self, segments: Sequence[PredictionSegment], spool_id: str | None, upto_seq: int
    ) -> None:
        body = {
            "segments": [encode(s, exclude=("created_ms",)) for s in segments],
            "spool_id": spool_id,
            "upto_seq": upto_seq,
        }
        self._call("POST", "/prediction-segments", body)

    def _list_prediction_segments(
        self, project: str, deployment: str | None, start_ms: int | None, end_ms: int | None
    ) -> list[PredictionSegment]:
        params = {"deployment": deployment, "start_ms": start_ms, "end_ms": end_ms}
        path = f"/projects/{segment(project)}/prediction-segments"
        rows = self._call("GET", path, params={k: v for k, v in params.items() if v is not None})
        return [decode(PredictionSegment, r) for r in rows]
