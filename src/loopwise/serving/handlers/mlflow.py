"""MLflow's scoring protocol: ``POST /invocations`` (JSON formats and CSV)."""

from __future__ import annotations

from loopwise.serving.http import INLINE_PARSE_BYTES, Exchange, Response, decode, dumps, header
from loopwise.serving.inference import Inference
from loopwise.serving.protocols.mlflow import parse_invocations

__all__ = ["MlflowScoring"]

_PREDICT = frozenset({"predict"})


class MlflowScoring:
    """``/invocations`` for the one model served, or the one named by ``?model=NAME``."""

    def __init__(self, inference: Inference) -> None:
        self.inference = inference

    async def invocations(self, record: Exchange, _: None) -> Response:
        inference = self.inference
        served = inference.only(record.scope)
        record.served(served.label, "invocations")
        body = await record.body()
        content_type = header(record.scope, b"content-type", "application/json")
        limit = inference.column_limit(served)
        csv = not content_type.startswith("application/json")  # pandas: a thread
        off_loop = csv or len(body) > INLINE_PARSE_BYTES
        inputs = await decode(record, off_loop, parse_invocations, body, content_type, limit)
        version, results = await inference.infer(served, inputs, _PREDICT, record)
        record.version = version
        return Response(200, dumps({"predictions": results["predict"].tolist()}))
