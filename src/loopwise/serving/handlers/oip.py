"""The Open Inference Protocol (KServe V2) REST routes: server metadata (``/v2``), model
metadata and readiness (``/v2/models/{name}[/versions/{v}][/ready]``) and ``POST …/infer``
(JSON tensors and the binary tensor extension)."""

from __future__ import annotations

from typing import Any

from loopwise.errors import NotFoundError
from loopwise.registry import LoadedModel
from loopwise.serving.deployments import ServedDeployment
from loopwise.serving.http import INLINE_PARSE_BYTES, Exchange, Response, decode, dumps, header
from loopwise.serving.inference import ALL_OUTPUTS, Inference, Served
from loopwise.serving.protocols.oip import (
    decode_infer_request,
    encode_binary_tensor,
    encode_tensor,
    oip_tensor_specs,
)
from loopwise.version import loopwise_version

__all__ = ["ModelRef", "OpenInference", "model_path"]

ModelRef = tuple[str, str | None]
"""A model's name and the version a path pins (None: the one served)."""


def model_path(rest: str) -> ModelRef:
    """``name`` or ``name/versions/v`` from a /v2/models/… path."""
    name, sep, version = rest.partition("/versions/")
    if not name or "/" in name or (sep and (not version or "/" in version)):
        raise NotFoundError(
            f"No route /v2/models/{rest}. Use /v2/models/NAME[/versions/V][/ready|/infer].",
            path=f"/v2/models/{rest}",
        )
    return name, (version if sep else None)


class OpenInference:
    """The V2 routes over the served models (the path parameter is read by ``model_path``)."""

    def __init__(self, inference: Inference) -> None:
        self.inference = inference

    async def server_metadata(self, record: Exchange, _: None) -> Response:
        return Response(
            200,
            dumps(
                {
                    "name": "loopwise",
                    "version": loopwise_version(),
                    "extensions": ["binary_tensor_data"],
                }
            ),
        )

    async def model_ready(self, record: Exchange, model: ModelRef) -> Response:
        name, version = model
        served = self.inference.named(name, version)
        if isinstance(served, ServedDeployment):
            return Response(200, dumps({"name": name, "ready": served.ready}))
        state = self.inference.models.state(name)
        return Response(200, dumps({"name": name, "ready": state.ready}))

    async def model_metadata(self, record: Exchange, model: ModelRef) -> Response:
        served = self.inference.named(*model)
        return Response(200, dumps(self._metadata(served)))

    def _metadata(self, served: Served) -> dict[str, Any]:
        models = self.inference.models
        loaded: LoadedModel | None
        if isinstance(served, ServedDeployment):
            routing = served.routing
            versions = [str(v) for v in routing.live] if routing is not None else []
            lanes = list(routing.live.values()) if routing is not None else []
            loaded = models.current(lanes[0].key) if lanes else None
        else:
            loaded = models.current(served.key)
            state = models.state(served.key)
            versions = [str(state.version)] if state.version is not None else []
        signature = (loaded.signature if loaded is not None else None) or {}
        declared = oip_tensor_specs(signature.get("outputs"))
        predict_type = declared[0]["datatype"] if len(declared) == 1 else "BYTES"
        outputs = [{"name": "predict", "datatype": predict_type, "shape": [-1]}]
        if loaded is not None and hasattr(loaded, "predict_proba"):
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, -1]})
        return {
            "name": served.name,
            "versions": versions,
            "platform": f"loopwise_{loaded.version.flavour}" if loaded is not None else "loopwise",
            "inputs": oip_tensor_specs(signature.get("inputs")),
            "outputs": outputs,
        }

    async def infer(self, record: Exchange, model: ModelRef) -> Response:
        inference = self.inference
        name, pinned = model
        served = inference.named(name, pinned)
        record.served(served.label, "v2")
        raw = await record.body()
        request = await decode(
            record,
            len(raw) > INLINE_PARSE_BYTES,
            decode_infer_request,
            raw,
            header(record.scope, b"inference-header-content-length", None),
            ALL_OUTPUTS,
            inference.column_limit(served),
        )
        body, all_binary, binary_outputs = request.body, request.all_binary, request.binary_outputs
        version, results = await inference.infer(
            served, request.inputs, request.wanted, record, pinned
        )
        record.version = version
        outputs, raw_parts = [], []
        for output, values in results.items():
            if all_binary or output in binary_outputs:
                spec, data = encode_binary_tensor(output, values)
                outputs.append(spec)
                raw_parts.append(data)
            else:
                outputs.append(encode_tensor(output, values))
        response: dict[str, Any] = {
            "model_name": served.name,
            "model_version": str(version),
            "outputs": outputs,
        }
        if "id" in body:
            response["id"] = body["id"]
        if not raw_parts:
            return Response(200, dumps(response))
        json_part = dumps(response)
        return Response(
            200,
            json_part + b"".join(raw_parts),
            [
                (b"content-type", b"application/octet-stream"),
                (b"inference-header-content-length", str(len(json_part)).encode()),
            ],
        )
