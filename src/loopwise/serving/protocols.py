"""Request and response formats of the inference server, with no web framework in them.

* the Open Inference Protocol (KServe V2) JSON tensors: each input is a named tensor; a model
  whose signature is a table takes one tensor per column, an array model takes one tensor;
* MLflow's scoring formats at ``/invocations``: ``dataframe_split``, ``dataframe_records``,
  ``instances``, ``inputs`` and CSV;
* plain records for ``/predict``.

Each parser returns what ``LoadedModel.predict`` takes; the signature check then names any
column that is missing or of the wrong type. Every parser takes the model's ``ColumnLimit`` and
refuses a wider request before building anything from it; every message quotes the request
cut short. Values must fit their V2 datatype (an INT8 of 1000 is refused, not wrapped).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd

from loopwise.errors import InvalidArgumentError
from loopwise.serving.schema import NO_SIGNATURE_LIMIT, ColumnLimit, Columns, Inputs, quoted, shown

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


MAX_TENSOR_DIMS = 32
"""The most dimensions an input tensor may have (NumPy's own limit is 64)."""
MAX_HEADER_LENGTH_DIGITS = 18

_INT_RANGES = {
    name: (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    for name, dtype in _DATATYPES.items()
    if name.startswith(("INT", "UINT"))
}
_FLOAT_MAX = {"FP16": float(np.finfo(np.float16).max), "FP32": float(np.finfo(np.float32).max)}
_BOUNDS: dict[str, tuple[float, float]] = {
    **_INT_RANGES,
    **{name: (-most, most) for name, most in _FLOAT_MAX.items()},
}


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
        size = int.from_bytes(raw[pos : pos + 4], "little")
        if pos + 4 + size > len(raw):
            raise InvalidArgumentError(
                f"{where}: truncated BYTES element (each is a 4-byte little-endian length, then "
                "that many bytes).",
                field=where,
            )
        items.append(raw[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return items


def split_binary_request(body: bytes, header_length: str | None) -> tuple[Any, BinaryData]:
    """The JSON part and the binary part of an infer request (binary tensor extension)."""
    size = len(body)
    if header_length is not None:
        # ASCII digits only: str.isdigit() takes '²' (which int() refuses)
        # and other scripts' digits (which it reads).
        if (
            not 0 < len(header_length) <= MAX_HEADER_LENGTH_DIGITS
            or not header_length.isascii()
            or not header_length.isdigit()
            or int(header_length) > len(body)
        ):
            raise InvalidArgumentError(
                f"Inference-Header-Content-Length is {quoted(header_length, 40)}; expected the "
                f"length in bytes of the JSON header as ASCII decimal digits, at most the body's "
                f"{len(body)} bytes.",
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


def _out_of_range(
    datatype: str, where: str, name: str, low: Any, high: Any
) -> InvalidArgumentError:
    lo, hi = _BOUNDS[datatype]
    fits = f"from {lo:g} to {hi:g}" if datatype in _FLOAT_MAX else f"from {lo} to {hi}"
    return InvalidArgumentError(
        f"{where} ({quoted(name, 40)}) has values from {low} to {high}, outside {datatype}'s "
        f"range ({fits}). Send a wider datatype (e.g. INT64 or FP64), or fix the values.",
        field=where,
    )


def _typed(data: Any, datatype: str, where: str, name: str) -> np.ndarray[Any, Any]:
    """JSON ``data`` (flat or nested) as an array of ``datatype``, or an error saying why not:
    values must fit the type's range, integers must be whole, BOOL takes true/false (or 0/1)
    and BYTES takes strings; nothing is wrapped, rounded or coerced."""
    try:
        raw = np.asarray(data)
        if datatype == "BYTES":
            if raw.dtype.kind not in "OU" or any(type(v) is not str for v in raw.ravel().tolist()):
                raise TypeError("BYTES elements must be strings")
            return raw.astype(np.object_)
        if raw.dtype.kind == "O":  # mixed or over-long integers: NumPy's own range check
            raw = np.asarray(raw.tolist(), dtype=np.float64 if datatype[0] == "F" else None)
        if raw.dtype.kind not in "biuf":
            raise TypeError(f"expected numbers, got {raw.dtype.kind!r} values")
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidArgumentError(
            f"{where} ({quoted(name, 40)}): its data do not fit datatype {datatype} "
            f"({quoted(str(exc), 120)}).",
            field=where,
        ) from exc
    if raw.size and raw.dtype.kind != "b":
        low, high = raw.min(), raw.max()
        if datatype == "BOOL":
            if low < 0 or high > 1 or (raw.dtype.kind == "f" and not np.all(raw == raw.round())):
                raise InvalidArgumentError(
                    f"{where} ({quoted(name, 40)}) is BOOL but has values from {low} to {high}; "
                    "send true/false (or 0/1).",
                    field=where,
                )
        elif datatype in _INT_RANGES and raw.dtype.kind == "f" and not np.all(raw == raw.round()):
            raise InvalidArgumentError(
                f"{where} ({quoted(name, 40)}) is {datatype} but has fractional values; send "
                "whole numbers, or a floating-point datatype (FP32, FP64).",
                field=where,
            )
        bounds = _BOUNDS.get(datatype)
        if bounds is not None and not (bounds[0] <= low and high <= bounds[1]):
            raise _out_of_range(datatype, where, name, low, high)
    return raw.astype(_DATATYPES[datatype])


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
    if type(name) is not str:
        raise InvalidArgumentError(
            f"{where} has name {quoted(name, 40)}; expected a string.", field=where
        )
    if type(datatype) is not str or datatype not in _DATATYPES:
        raise InvalidArgumentError(
            f"{where} ({quoted(name, 40)}) has datatype {quoted(datatype, 40)}; expected one of "
            f"{sorted(_DATATYPES)}.",
            field=where,
        )
    if (
        type(shape) is not list
        or len(shape) > MAX_TENSOR_DIMS
        or not all(type(d) is int and d >= 0 for d in shape)
    ):
        raise InvalidArgumentError(
            f"{where} ({quoted(name, 40)}) has shape {quoted(shape, 60)}; expected a list of at "
            f"most {MAX_TENSOR_DIMS} non-negative integers (not floats or booleans).",
            field=where,
        )
    if binary_size is not None:
        if binary is None or type(binary_size) is not int:
            raise InvalidArgumentError(
                f"{where} ({quoted(name, 40)}) has binary_data_size {quoted(binary_size, 40)} "
                "but the request has no binary part (or the size is not an integer).",
                field=where,
            )
        raw = binary.take(binary_size, where)
        if datatype == "BYTES":
            elements = _bytes_elements(raw, where)
            array = np.empty(len(elements), dtype=np.object_)
            array[:] = [b.decode("utf-8", "replace") for b in elements]
        else:
            dtype = np.dtype(_DATATYPES[datatype]).newbyteorder("<")
            if len(raw) % dtype.itemsize:
                raise InvalidArgumentError(
                    f"{where} ({quoted(name, 40)}): {len(raw)} bytes is not a whole number of "
                    f"{datatype} values.",
                    field=where,
                )
            if datatype == "BOOL" and raw.translate(None, b"\x00\x01"):
                raise InvalidArgumentError(
                    f"{where} ({quoted(name, 40)}): BOOL values are bytes 0 or 1.", field=where
                )
            array = np.frombuffer(raw, dtype=dtype)
    else:
        array = _typed(spec["data"], datatype, where, name)
    needed = math.prod(shape)
    if array.size != needed:
        raise InvalidArgumentError(
            f"{where} ({quoted(name, 40)}) has {array.size} values but shape "
            f"{quoted(shape, 60)} needs {needed if needed < 10**12 else 'more than 10^12'}. "
            "Send data in row-major order, flattened or nested.",
            field=where,
        )
    return name, array.reshape(shape)


def decode_oip_inputs(
    body: Any, binary: BinaryData | None = None, limit: ColumnLimit = NO_SIGNATURE_LIMIT
) -> Inputs:
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
    limit.check(len(specs), "inputs")
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
                f"Input {quoted(name, 40)} has shape {list(array.shape)}; a table's column is a "
                "tensor of shape [n] (or [n, 1]).",
                field=name,
            )
        columns[name] = array
    _same_lengths(columns, "inputs")
    return columns


@dataclass(frozen=True)
class InferRequest:
    """An OIP infer request, decoded: its JSON, its model input, and the outputs it wants."""

    body: Mapping[str, Any]
    inputs: Inputs
    wanted: frozenset[str]
    binary_outputs: frozenset[str]
    all_binary: bool


def decode_infer_request(
    raw: bytes, header_length: str | None, outputs: frozenset[str], limit: ColumnLimit
) -> InferRequest:
    """A whole ``POST …/infer`` body (JSON, or JSON and binary tensors) decoded in one call, so
    that the server can run it off the event loop for a large body. ``outputs``: the outputs
    the model has, the default when the request names none."""
    body, binary = split_binary_request(raw, header_length)
    if not isinstance(body, dict):
        raise InvalidArgumentError("Expected the inference request to be a JSON object.")
    inputs = decode_oip_inputs(body, binary, limit)
    parameters = body.get("parameters")
    all_binary = isinstance(parameters, Mapping) and bool(parameters.get("binary_data_output"))
    requested = body.get("outputs")
    if not isinstance(requested, list):
        return InferRequest(body, inputs, outputs, frozenset(), all_binary)
    wanted, binary_outputs = set(), set()
    for i, output in enumerate(requested):
        name = output.get("name") if isinstance(output, Mapping) else None
        if type(name) is not str:
            raise InvalidArgumentError(
                f"outputs[{i}] is {quoted(output, 60)}; expected {{'name': OUTPUT}} with OUTPUT "
                f"one of {sorted(outputs)}.",
                field="outputs",
            )
        wanted.add(name)
        options = output.get("parameters")
        if isinstance(options, Mapping) and options.get("binary_data"):
            binary_outputs.add(name)
    unknown = wanted - outputs
    if unknown:
        raise InvalidArgumentError(
            f"Unknown output(s) {shown(sorted(unknown))}; this model's outputs are predict and, "
            "for a classifier, predict_proba.",
            field="outputs",
        )
    return InferRequest(body, inputs, frozenset(wanted), frozenset(binary_outputs), all_binary)


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
    says, in its range, as ``(name, values)``; None sends it through the full decoding
    (``_tensor``), which says what is wrong."""
    if type(spec) is not dict or "parameters" in spec:
        return None
    name, shape, data = spec.get("name"), spec.get("shape"), spec.get("data")
    datatype = spec.get("datatype")
    kinds = _PLAIN_KINDS.get(datatype) if type(datatype) is str else None
    if type(name) is not str or type(data) is not list or type(shape) is not list or not kinds:
        return None
    # (2.0 == 2 and True == 1: the types are checked too)
    if not (shape == [len(data)] or shape == [len(data), 1]) or type(shape[0]) is not int:
        return None
    if len(shape) == 2 and type(shape[1]) is not int:
        return None
    for value in data:
        if type(value) not in kinds:
            return None
    bounds = _BOUNDS.get(datatype)  # type: ignore[arg-type]
    if bounds is not None and data and not (bounds[0] <= min(data) and max(data) <= bounds[1]):
        return None
    return name, data


def _same_lengths(columns: Mapping[str, Any], where: str) -> None:
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise InvalidArgumentError(
            f"Input columns have different lengths {shown(sorted(lengths))}; every column needs "
            "one value per row.",
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


def _records_to_columns(records: Any, where: str, limit: ColumnLimit) -> Columns:
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
        limit.check(len(records[0]), where)
        return {str(k): [v] for k, v in records[0].items()}
    keys: dict[str, None] = {}
    most = limit.most
    for record in records:
        keys.update(dict.fromkeys(record))
        if len(keys) > most:
            limit.check(len(keys), where, at_least=True)
    return {str(k): [r.get(k) for r in records] for k in keys}


def parse_records(body: Any, limit: ColumnLimit = NO_SIGNATURE_LIMIT) -> Columns:
    """``/predict`` input: a list of records (or ``{"records": [...]}``), as columns."""
    records = body.get("records") if isinstance(body, dict) else body
    return _records_to_columns(records, "records", limit)


def _split_to_columns(value: Any, limit: ColumnLimit) -> Columns:
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
    limit.check(len(names), "dataframe_split")
    width = len(names)
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != width:
            raise InvalidArgumentError(
                f"dataframe_split row {i} has "
                f"{len(row) if isinstance(row, list) else type(row).__name__} values; expected "
                f"a list of {width}, one per column {shown(names)}.",
                field=f"dataframe_split.data[{i}]",
            )
    if len(data) == 1:
        return {n if type(n) is str else str(n): [v] for n, v in zip(names, data[0], strict=True)}
    names = [n if type(n) is str else str(n) for n in names]
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


_FIRST_LINE = re.compile(rb"[^\r\n]*")


def csv_columns(body: bytes) -> int:
    """How many columns a CSV body's header has, without parsing the rest of the body: commas
    in the first line, or the csv module's first record when the header has quotes."""
    line = _FIRST_LINE.match(body)
    first = line.group() if line is not None else b""
    if b'"' not in first:
        return first.count(b",") + 1
    try:
        return len(next(csv.reader(io.StringIO(body.decode("utf-8", "replace"), newline="")), []))
    except csv.Error:  # (e.g. a NUL byte) pandas will say what is wrong; count commas meanwhile
        return first.count(b",") + 1


def _read_csv(body: bytes, limit: ColumnLimit) -> Columns:
    limit.check(csv_columns(body), "The CSV body")
    try:
        frame = pd.read_csv(io.BytesIO(body))
    except (ValueError, pd.errors.ParserError) as exc:
        raise InvalidArgumentError(
            f"Could not read the CSV body: {quoted(str(exc), 200)}. Send a header line of column "
            "names, then one line per row.",
        ) from exc
    if frame.empty:
        raise InvalidArgumentError("The CSV body has no rows.")
    limit.check(len(frame.columns), "The CSV body")  # (a header the count above misjudged)
    return {str(c): frame[c].to_numpy() for c in frame.columns}


def parse_invocations(
    body: bytes, content_type: str, limit: ColumnLimit = NO_SIGNATURE_LIMIT
) -> Inputs:
    """MLflow's scoring formats (``/invocations``), by content type and top-level key.

    (JSON objects are checked with ``isinstance(…, dict)``: orjson makes dicts, and the check
    is much cheaper than one against ``Mapping``.)"""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "text/csv":
        return _read_csv(body, limit)
    if kind != "application/json":
        raise InvalidArgumentError(
            f"Expected Content-Type application/json or text/csv, got {quoted(content_type)}.",
            content_type=content_type[:100],
        )
    payload = load_json(body)
    formats = ("dataframe_split", "dataframe_records", "instances", "inputs")
    keys = [k for k in formats if isinstance(payload, dict) and k in payload]
    if len(keys) != 1:
        raise InvalidArgumentError(
            f"Expected a JSON object with exactly one of {list(formats)}; got "
            f"{shown(sorted(payload)) if isinstance(payload, dict) else type(payload).__name__}.",
            expected=list(formats),
        )
    key = keys[0]
    value = payload[key]
    if key == "dataframe_split":
        return _split_to_columns(value, limit)
    if key == "dataframe_records":
        return _records_to_columns(value, key, limit)
    try:
        if isinstance(value, dict):  # named tensors: one column each
            limit.check(len(value), key)
            columns = {str(k): np.asarray(v).ravel() for k, v in value.items()}
            _same_lengths(columns, key)
            return columns
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return _records_to_columns(value, key, limit)
        array = np.asarray(value)
    except (TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, InvalidArgumentError):
            raise
        raise InvalidArgumentError(
            f"Could not read {key!r}: {quoted(str(exc), 200)}.", field=key
        ) from exc
    if array.ndim == 0 or array.shape[0] == 0:
        raise InvalidArgumentError(f"{key!r} holds no rows.", field=key)
    return array
