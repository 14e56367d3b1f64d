"""The Open Inference Protocol (KServe V2) tensors: an infer request's JSON (and binary tensor
extension) decoded into model input, and results encoded as output tensors.

Each input is a named tensor; a model whose signature is a table takes one tensor per column, an
array model takes one tensor. Values must fit their V2 datatype (an INT8 of 1000 is refused, not
wrapped); every message quotes the request cut short.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from loopwise.errors import InvalidArgumentError
from loopwise.serving.protocols.records import same_lengths
from loopwise.serving.schema import NO_SIGNATURE_LIMIT, ColumnLimit, Inputs, quoted, shown

__all__ = [
    "MAX_HEADER_LENGTH_DIGITS",
    "MAX_TENSOR_DIMS",
    "BinaryData",
    "InferRequest",
    "decode_infer_request",
    "decode_oip_inputs",
    "encode_binary_tensor",
    "encode_tensor",
    "oip_tensor_specs",
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
            same_lengths(columns, "inputs")
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
    same_lengths(columns, "inputs")
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
