"""Request and response formats of the inference server, one module per protocol, with no web
framework in them (the routes that use them are in ``handlers/``).

* ``oip``: the Open Inference Protocol (KServe V2) JSON tensors and binary tensor extension;
* ``mlflow``: MLflow's scoring formats at ``/invocations`` (JSON and CSV);
* ``records``: plain records for ``/predict``, and the column checks the others share.

Each parser returns what ``LoadedModel.predict`` takes; the signature check then names any
column that is missing or of the wrong type. Every parser takes the model's ``ColumnLimit`` and
refuses a wider request before building anything from it; every message quotes the request
cut short.
"""

from __future__ import annotations

from loopwise.serving.protocols.mlflow import csv_columns, parse_invocations
from loopwise.serving.protocols.oip import (
    BinaryData,
    InferRequest,
    decode_infer_request,
    decode_oip_inputs,
    encode_binary_tensor,
    encode_tensor,
    oip_tensor_specs,
    split_binary_request,
)
from loopwise.serving.protocols.records import load_json, parse_records

__all__ = [
    "BinaryData",
    "InferRequest",
    "csv_columns",
    "decode_infer_request",
    "decode_oip_inputs",
    "encode_binary_tensor",
    "encode_tensor",
    "load_json",
    "oip_tensor_specs",
    "parse_invocations",
    "parse_records",
    "split_binary_request",
]
