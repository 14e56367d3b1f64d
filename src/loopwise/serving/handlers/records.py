"""Loopwise's own ``POST /predict``: a list of records in, predictions (and probabilities) out."""

from __future__ import annotations

from typing import Any

from loopwise.serving.http import INLINE_PARSE_BYTES, Exchange, Response, decode, dumps
from loopwise.serving.inference import ALL_OUTPUTS, Inference
from loopwise.serving.protocols.records import load_json, parse_records
from loopwise.serving.schema import ColumnLimit, Inputs

__all__ = ["RecordsPredict"]


class RecordsPredict:
    """``/predict`` for the one model served, or the one named by ``?model=NAME``."""

    def __init__(self, inference: Inference) -> None:
        self.inference = inference

    async def predict(self, record: Exchange, _: None) -> Response:
        inference = self.inference
        served = inference.only(record.scope)
        record.served(served.label, "predict")
        body = await record.body()
        limit = inference.column_limit(served)
        inputs = await decode(record, len(body) > INLINE_PARSE_BYTES, _parse_predict, body, limit)
        version, results = await inference.infer(served, inputs, ALL_OUTPUTS, record)
        record.version = version
        answer: dict[str, Any] = {
            "model": served.name,
            "version": version,
            "predictions": results["predict"].tolist(),
        }
        if "predict_proba" in results:
            answer["probabilities"] = results["predict_proba"].tolist()
        return Response(200, dumps(answer))


def _parse_predict(body: bytes, limit: ColumnLimit) -> Inputs:
    return parse_records(load_json(body), limit)
