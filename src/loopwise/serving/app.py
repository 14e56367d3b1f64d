"""The inference server's ASGI app: registered models behind three protocols.

``create_serving_app({"employment": loaded_model, …})`` serves each model under its name:

* Open Inference Protocol (KServe V2) REST: ``/v2/health/live|ready``, ``/v2``,
  ``/v2/models/{name}[/versions/{v}]``, ``…/ready`` and ``POST …/infer`` (JSON tensors);
* MLflow's scoring protocol: ``POST /invocations`` (one model served, or ``?model=name``);
* ``POST /predict``: a list of records (``?model=name`` when several are served).

Inputs are checked against each model's signature; a mismatch is a 422 that names the column.
Predictions run in a worker thread, never on the event loop. Errors use the control plane's
JSON envelope.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import anyio.to_thread
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from loopwise import __version__
from loopwise.errors import HTTP_STATUS, InvalidArgumentError, LoopwiseError, not_found
from loopwise.registry import LoadedModel
from loopwise.serving.protocols import (
    decode_oip_inputs,
    encode_binary_tensor,
    encode_tensor,
    oip_tensor_specs,
    parse_invocations,
    parse_records,
    split_binary_request,
)

__all__ = ["create_serving_app"]


def _json(request_body: bytes) -> Any:
    try:
        return json.loads(request_body)
    except ValueError as exc:
        raise InvalidArgumentError(f"The body is not valid JSON: {exc}.") from exc


def _outputs(model: LoadedModel, X: Any, wanted: set[str] | None) -> dict[str, Any]:
    """``predict`` and, for a classifier, ``predict_proba``, as NumPy arrays."""
    results: dict[str, Any] = {}
    if wanted is None or "predict" in wanted:
        results["predict"] = model.predict(X)
    if hasattr(model, "predict_proba") and (wanted is None or "predict_proba" in wanted):
        results["predict_proba"] = model.predict_proba(X)
    return results


def create_serving_app(models: Mapping[str, LoadedModel]) -> FastAPI:
    """An ASGI app that serves ``models`` (already loaded) under their names."""
    app = FastAPI(title="Loopwise inference server", version=__version__)
    served = dict(models)

    def model_named(name: str, version: str | None = None) -> LoadedModel:
        model = served.get(name)
        if model is None:
            raise not_found("model", name, served)
        if version is not None and version != str(model.version.version):
            raise not_found(
                f"served version of model {name!r}", version, [str(model.version.version)]
            )
        return model

    def only_model(request: Request) -> LoadedModel:
        name = request.query_params.get("model")
        if name is not None:
            return model_named(name)
        if len(served) != 1:
            raise InvalidArgumentError(
                f"Several models are served ({sorted(served)}): name one with ?model=NAME.",
                parameter="model",
            )
        return next(iter(served.values()))

    @app.exception_handler(LoopwiseError)
    async def _error(request: Request, exc: LoopwiseError) -> JSONResponse:
        status = HTTP_STATUS.get(exc.code, 500)
        if request.url.path.startswith("/v2"):
            # The Open Inference Protocol's error is {"error": "<message>"} (clients such as
            # tritonclient read it as a string); our code and details ride alongside.
            body = {"error": exc.message, "code": exc.code, "details": exc.details}
            return JSONResponse(body, status_code=status)
        return JSONResponse(exc.to_dict(), status_code=status)

    # -- Open Inference Protocol ---------------------------------------------------------------
    @app.get("/v2/health/live")
    def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.get("/v2")
    def server_metadata() -> dict[str, Any]:
        return {"name": "loopwise", "version": __version__, "extensions": []}

    def metadata(model: LoadedModel) -> dict[str, Any]:
        signature = model.signature or {}
        declared = oip_tensor_specs(signature.get("outputs"))
        predict_type = declared[0]["datatype"] if len(declared) == 1 else "BYTES"
        outputs = [{"name": "predict", "datatype": predict_type, "shape": [-1]}]
        if hasattr(model, "predict_proba"):
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, -1]})
        return {
            "name": model.version.name,
            "versions": [str(model.version.version)],
            "platform": f"loopwise_{model.version.flavour}",
            "inputs": oip_tensor_specs(signature.get("inputs")),
            "outputs": outputs,
        }

    @app.get("/v2/models/{name}")
    def model_metadata(name: str) -> dict[str, Any]:
        return metadata(model_named(name))

    @app.get("/v2/models/{name}/versions/{version}")
    def model_version_metadata(name: str, version: str) -> dict[str, Any]:
        return metadata(model_named(name, version))

    @app.get("/v2/models/{name}/ready")
    def model_ready(name: str) -> dict[str, Any]:
        model_named(name)
        return {"name": name, "ready": True}

    async def infer(model: LoadedModel, request: Request) -> Response:
        body, binary = split_binary_request(
            await request.body(), request.headers.get("inference-header-content-length")
        )
        if not isinstance(body, Mapping):
            raise InvalidArgumentError("Expected the inference request to be a JSON object.")
        X = decode_oip_inputs(body, model.signature, binary)
        requested = body.get("outputs")
        parameters = body.get("parameters")
        all_binary = isinstance(parameters, Mapping) and parameters.get("binary_data_output")
        wanted, binary_outputs = None, set()
        if isinstance(requested, list):
            wanted = {str(o.get("name")) for o in requested if isinstance(o, Mapping)}
            binary_outputs = {
                str(o.get("name"))
                for o in requested
                if isinstance(o, Mapping)
                and isinstance(o.get("parameters"), Mapping)
                and o["parameters"].get("binary_data")
            }
        results = await anyio.to_thread.run_sync(_outputs, model, X, wanted)
        outputs, raw_parts = [], []
        for name, values in results.items():
            if all_binary or name in binary_outputs:
                spec, raw = encode_binary_tensor(name, values)
                outputs.append(spec)
                raw_parts.append(raw)
            else:
                outputs.append(encode_tensor(name, values))
        response: dict[str, Any] = {
            "model_name": model.version.name,
            "model_version": str(model.version.version),
            "outputs": outputs,
        }
        if "id" in body:
            response["id"] = body["id"]
        if not raw_parts:
            return JSONResponse(response)
        header = json.dumps(response).encode()
        return Response(
            header + b"".join(raw_parts),
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(len(header))},
        )

    @app.post("/v2/models/{name}/infer")
    async def model_infer(name: str, request: Request) -> Response:
        return await infer(model_named(name), request)

    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def model_version_infer(name: str, version: str, request: Request) -> Response:
        return await infer(model_named(name, version), request)

    # -- MLflow scoring and plain records --------------------------------------------------------
    @app.post("/invocations")
    async def invocations(request: Request) -> dict[str, Any]:
        model = only_model(request)
        X = parse_invocations(
            await request.body(), request.headers.get("content-type", "application/json")
        )
        predictions = await anyio.to_thread.run_sync(model.predict, X)
        return {"predictions": np.asarray(predictions).tolist()}

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, Any]:
        model = only_model(request)
        X = parse_records(_json(await request.body()))
        results = await anyio.to_thread.run_sync(_outputs, model, X, None)
        response: dict[str, Any] = {
            "model": model.version.name,
            "version": model.version.version,
            "predictions": np.asarray(results["predict"]).tolist(),
        }
        if "predict_proba" in results:
            response["probabilities"] = np.asarray(results["predict_proba"]).tolist()
        return response

    return app
