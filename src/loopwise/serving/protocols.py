"""Request and response formats of the inference server, with no web framework in them.

* the Open Inference Protocol (KServe V2) JSON tensors: each input is a named tensor; a model
  whose signature is a table takes one tensor per column, an array model takes one tensor;
* MLflow's scoring formats at ``/invocations``: ``dataframe_split``, ``dataframe_records``,
  ``instances``, ``inputs`` and CSV;
* plain records for ``/predict``.

Each parser returns what ``LoadedModel.predict`` takes; the signature check then names any
column that is missing or of the wrong type.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
import pandas as pd

from loopwise.errors import InvalidArgumentError
from loopwise.serving.schema import Columns, Inputs

__all__ = [
    "BinaryData",
    "decode_oip_inputs",
    "encode_binary_tensor",
    "encode_tensor",
    "load_json",
    "oip_tensor_specs",
    "parse_invocations",
    "parse_records",
    "split_binary_request",
]

_DATATYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}
_SIGNATURE_TO_DATATYPE = {
    "bool": "BOOL",
    "int": "INT64",
    "float": "FP64",
    "str": "BYTES",
    "category": "BYTES",
    "datetime": "BYTES",
}


def _datatype_of(kind: str) -> str:
    for prefix, datatype in _SIGNATURE_TO_DATATYPE.items():
        if kind.startswith(prefix):
            return datatype
    return "BYTES"


def oip_tensor_specs(schema: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The tensors a signature's ``inputs`` or ``outputs`` part describes, as OIP metadata."""
    if not schema:
        return []
    if schema.get("type") == "dataframe":
        return [
            {"name": str(c["name"]), "datatype": _datatype_of(str(c["dtype"])), "shape": [-1]}
            for c in schema["columns"]
        ]
    return [
        {
            "name": "input",
            "datatype": _datatype_of(str(schema.get("dtype", ""))),
            "shape": list(schema.get("shape", [-1])),
        }
    ]


class BinaryData:
    """The bytes after the JSON header of a binary-extension request, read in input order."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, size: int, where: str) -> bytes:
        if size < 0 or self.offset + size > len(self.data):
            raise InvalidArgumentError(
                f"{where} declares binary_data_size {size}, but only "
                f"{len(self.data) - self.offset} bytes of binary data remain.",
                field=where,
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk


def _bytes_elements(raw: bytes, where: str) -> list[bytes]:
    """BYTES tensor elements in the binary extension: each a 4-byte little-endian length."""
    items, pos = [], 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise InvalidArgumentError(f"{where}: truncated BYTES element.", field=where)
        size = int.from_bytes(raw[pos : pos + 4], "little")
        items.append(raw[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return items


def split_binary_request(body: bytes, header_length: str | None) -> tuple[Any, BinaryData]:
    """The JSON part and the binary part of an infer request (binary tensor extension)."""
    size = len(body)
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise InvalidArgumentError(
                f"Inference-Header-Content-Length is {header_length!r}; expected the length in "
                f"bytes of the JSON header, at most the body's {len(body)} bytes.",
                field="Inference-Header-Content-Length",
            )
        size = int(header_length)
    try:
        return orjson.loads(body[:size]), BinaryData(body[size:])
    except ValueError as exc:
        raise InvalidArgumentError(
            f"The request's JSON part is not valid JSON ({exc}). With binary tensors, send the "
            "JSON part's length in Inference-Header-Content-Length.",
        ) from exc


def _tensor(
    spec: Any, where: str, binary: BinaryData | None = None
) -> tuple[str, np.ndarray[Any, Any]]:
    if not isinstance(spec, Mapping):
        raise InvalidArgumentError(
            f"Expected {where} to be an object with name, shape, datatype and data; got "
            f"{type(spec).__name__}.",
            field=where,
        )
    parameters = spec.get("parameters")
    binary_size = parameters.get("binary_data_size") if isinstance(parameters, Mapping) else None
    required = (
        ("name", "shape", "datatype")
        if binary_size is not None
        else ("name", "shape", "datatype", "data")
    )
    missing = [k for k in required if k not in spec]
    if missing:
        raise InvalidArgumentError(
            f"{where} is missing {missing}. An input tensor needs name, shape, datatype and data.",
            field=where,
            missing=missing,
        )
    name, shape, datatype = spec["name"], spec["shape"], spec["datatype"]
    data = spec.get("data")
    if datatype not in _DATATYPES:
        raise InvalidArgumentError(
            f"{where} ({name!r}) has datatype {datatype!r}; expected one of {sorted(_DATATYPES)}.",
            field=where,
        )
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InvalidArgumentError(
            f"{where} ({name!r}) has shape {shape!r}; expected a list of non-negative integers.",
            field=where,
        )
    if binary_size is not None:
        if binary is None or not isinstance(binary_size, int):
            raise InvalidArgumentError(
                f"{where} ({name!r}) has binary_data_size but the request has no binary part.",
                field=where,
            )
        raw = binary.take(binary_size, where)
        if datatype == "BYTES":
            data = [b.decode("utf-8", "replace") for b in _bytes_elements(raw, where)]
        else:
            itemsize = np.dtype(_DATATYPES[datatype]).itemsize
            if len(raw) % itemsize:
                raise InvalidArgumentError(
                    f"{where} ({name!r}): {len(raw)} bytes is not a whole number of {datatype} "
                    "values.",
                    field=where,
                )
            data = np.frombuffer(raw, dtype=np.dtype(_DATATYPES[datatype]).newbyteorder("<"))
    try:
        array: np.ndarray[Any, Any] = np.asarray(data, dtype=_DATATYPES[datatype])
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidArgumentError(
            f"{where} ({name!r}): its data do not fit datatype {datatype} ({exc}).", field=where
        ) from exc
    if array.size != math.prod(shape):
        raise InvalidArgumentError(
            f"{where} ({name!r}) has {array.size} values but shape {shape} needs "
            f"{math.prod(shape)}. Send data in row-major order, flattened or nested.",
            field=where,
        )
    return str(name), array.reshape(shape)


def decode_oip_inputs(body: Any, binary: BinaryData | None = None) -> Inputs:
    """An OIP infer request's tensors as model input: columns, or one array for an array model.

    Several tensors (or one whose name is not ``input``) are a table's columns, each of shape
    ``[n]`` or ``[n, 1]``; a single tensor named ``input`` is an array model's whole input.
    """
    if not isinstance(body, Mapping) or not isinstance(body.get("inputs"), list):
        raise InvalidArgumentError(
            "Expected an inference request {'inputs': [{name, shape, datatype, data}, …]}.",
            field="inputs",
        )
    specs = body["inputs"]
    if not specs:
        raise InvalidArgumentError("Expected at least one input tensor.", field="inputs")
    columns: dict[str, Any] = {}
    if len(specs) > 1 or (type(specs[0]) is dict and specs[0].get("name") != "input"):
        plain = [_plain_column(spec) for spec in specs]
        if all(p is not None for p in plain):  # the common case: JSON columns, kept as lists
            for name, values in plain:  # type: ignore[misc]
                columns[name] = values
            _same_lengths(columns, "inputs")
            return columns
    tensors = [_tensor(spec, f"inputs[{i}]", binary) for i, spec in enumerate(specs)]
    if len(tensors) == 1 and tensors[0][0] == "input":
        return tensors[0][1]
    for name, array in tensors:
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise InvalidArgumentError(
                f"Input {name!r} has shape {list(array.shape)}; a table's column is a tensor "
                "of shape [n] (or [n, 1]).",
                field=name,
            )
        columns[name] = array
    _same_lengths(columns, "inputs")
    return columns


_NUMBER_TYPES = (float, int, bool)
_PLAIN_KINDS: dict[str, tuple[type, ...]] = {
    **{t: _NUMBER_TYPES for t in ("FP16", "FP32", "FP64")},
    **{
        t: (int, bool)
        for t in ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
    },
    "BOOL": (bool,),
    "BYTES": (str,),
}


def _plain_column(spec: Any) -> tuple[str, list[Any]] | None:
    """A JSON tensor of shape ``[n]`` or ``[n, 1]`` whose values already are what its datatype
    says, as ``(name, values)``; None sends it through the full decoding (``_tensor``)."""
    if type(spec) is not dict or "parameters" in spec:
        return None
    name, shape, data = spec.get("name"), spec.get("shape"), spec.get("data")
    kinds = _PLAIN_KINDS.get(spec.get("datatype"))  # type: ignore[arg-type]
    if type(name) is not str or type(data) is not list or type(shape) is not list or not kinds:
        return None
    if not (shape == [len(data)] or shape == [len(data), 1]):
        return None
    for value in data:
        if type(value) not in kinds:
            return None
    return name, data


def _same_lengths(columns: Mapping[str, Any], where: str) -> None:
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise InvalidArgumentError(
            f"Input columns have different lengths {sorted(lengths)}; every column needs one "
            "value per row.",
            field=where,
        )
    if lengths == {0}:
        raise InvalidArgumentError("The input has no rows.", field=where)


def encode_binary_tensor(name: str, values: Any) -> tuple[dict[str, Any], bytes]:
    """A NumPy result as a binary-extension output: the JSON spec and its raw bytes."""
    spec = encode_tensor(name, values)
    data = spec.pop("data")
    if spec["datatype"] == "BYTES":
        raw = b"".join(len(b).to_bytes(4, "little") + b for b in (str(v).encode() for v in data))
    else:
        dtype = np.dtype(_DATATYPES[spec["datatype"]]).newbyteorder("<")
        raw = np.asarray(data, dtype=dtype).tobytes()
    spec["parameters"] = {"binary_data_size": len(raw)}
    return spec, raw


def encode_tensor(name: str, values: Any) -> dict[str, Any]:
    """A NumPy result as an OIP output tensor (flattened data, row-major)."""
    array = np.asarray(values)
    data: list[Any]
    if array.dtype.kind in "OUS":
        datatype, data = "BYTES", [str(v) for v in array.ravel()]
    elif array.dtype.kind == "b":
        datatype, data = "BOOL", array.ravel().tolist()
    elif array.dtype.kind in "iu":
        datatype, data = "INT64", array.astype(np.int64).ravel().tolist()
    else:
        datatype, data = "FP64", array.astype(np.float64).ravel().tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def _records_to_columns(records: Any, where: str) -> Columns:
    if (
        not isinstance(records, list)
        or not records
        or not all(isinstance(r, dict) for r in records)
    ):
        raise InvalidArgumentError(
            'Expected a non-empty JSON list of records, e.g. [{"AGEP": 35, "SEX": 1}], or '
            '{"records": [...]}.',
            field=where,
        )
    if len(records) == 1:
        return {str(k): [v] for k, v in records[0].items()}
    keys: dict[str, None] = {}
    for record in records:
        keys.update(dict.fromkeys(record))
    return {str(k): [r.get(k) for r in records] for k in keys}


def parse_records(body: Any) -> Columns:
    """``/predict`` input: a list of records (or ``{"records": [...]}``), as columns."""
    records = body.get("records") if isinstance(body, dict) else body
    return _records_to_columns(records, "records")


def _split_to_columns(value: Any) -> Columns:
    if not isinstance(value, dict) or "columns" not in value or "data" not in value:
        raise InvalidArgumentError(
            "dataframe_split needs 'columns' and 'data' (and optionally 'index').",
            field="dataframe_split",
        )
    names, data = value["columns"], value["data"]
    if not isinstance(names, list) or not names or not isinstance(data, list) or not data:
        raise InvalidArgumentError(
            "dataframe_split needs a non-empty list 'columns' and a non-empty list of rows "
            "'data', e.g. {'columns': ['AGEP'], 'data': [[35]]}.",
            field="dataframe_split",
        )
    width = len(names)
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != width:
            raise InvalidArgumentError(
                f"dataframe_split row {i} has "
                f"{len(row) if isinstance(row, list) else type(row).__name__} values; expected "
                f"a list of {width}, one per column {names[:10]}.",
                field=f"dataframe_split.data[{i}]",
            )
    if len(data) == 1:
        return {n if type(n) is str else str(n): [v] for n, v in zip(names, data[0], strict=True)}
    names = [str(n) for n in names]
    return {n: list(col) for n, col in zip(names, zip(*data, strict=True), strict=True)}


def load_json(body: bytes) -> Any:
    """A request body's JSON, or an error that says where it stopped parsing."""
    try:
        return orjson.loads(body)
    except ValueError as exc:
        raise InvalidArgumentError(
            f"The body is not valid JSON: {exc}. Send a JSON document with "
            "Content-Type: application/json."
        ) from exc


def parse_invocations(body: bytes, content_type: str) -> Inputs:
    """MLflow's scoring formats (``/invocations``), by content type and top-level key.

    (JSON objects are checked with ``isinstance(…, dict)``: orjson makes dicts, and the check
    is much cheaper than one against ``Mapping``.)"""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "text/csv":
        try:
            frame = pd.read_csv(io.BytesIO(body))
        except (ValueError, pd.errors.ParserError) as exc:
            raise InvalidArgumentError(f"Could not read the CSV body: {exc}.") from exc
        if frame.empty:
            raise InvalidArgumentError("The CSV body has no rows.")
        return {str(c): frame[c].to_numpy() for c in frame.columns}
    if kind != "application/json":
        raise InvalidArgumentError(
            f"Expected Content-Type application/json or text/csv, got {content_type!r}.",
            content_type=content_type,
        )
    payload = load_json(body)
    formats = ("dataframe_split", "dataframe_records", "instances", "inputs")
    keys = [k for k in formats if isinstance(payload, dict) and k in payload]
    if len(keys) != 1:
        raise InvalidArgumentError(
            f"Expected a JSON object with exactly one of {list(formats)}; got "
            f"{sorted(payload) if isinstance(payload, dict) else type(payload).__name__}.",
            expected=list(formats),
        )
    key = keys[0]
    value = payload[key]
    if key == "dataframe_split":
        return _split_to_columns(value)
    if key == "dataframe_records":
        return _records_to_columns(value, key)
    try:
        if isinstance(value, dict):  # named tensors: one column each
            columns = {str(k): np.asarray(v).ravel() for k, v in value.items()}
            _same_lengths(columns, key)
            return columns
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return _records_to_columns(value, key)
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidArgumentError):
            raise
        raise InvalidArgumentError(f"Could not read {key!r}: {exc}.", field=key) from exc
    if array.ndim == 0 or array.shape[0] == 0:
        raise InvalidArgumentError(f"{key!r} holds no rows.", field=key)
    return array
