"""ONNX graphs, run with ONNX Runtime on the CPU; loading a graph runs no Python code.

A graph takes either one 2-D tensor or one ``[n, 1]`` tensor per column (what skl2onnx makes of a
DataFrame); ``predict`` feeds whichever the graph wants and returns its first output.
``predict_proba`` exists only for graphs with a probabilities output.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopwise.errors import InvalidArgumentError, SignatureMismatchError, require_extra
from loopwise.registry.flavours.base import Flavour, model_file, module_of

__all__ = ["OnnxClassifier", "OnnxFlavour", "OnnxModel"]

FILE = "model.onnx"
EXTRA = "onnx"
PROVIDERS = ["CPUExecutionProvider"]
PROBA_OUTPUTS = ("probabilities", "output_probability")
"""Output names skl2onnx gives class probabilities (``output_probability`` is the ZipMap form)."""
CLASS_LABELS = ("classlabels_int64s", "classlabels_ints", "classlabels_strings")

ELEMENT_TYPES: dict[str, np.dtype[Any]] = {
    f"tensor({name})": np.dtype(dtype)
    for name, dtype in {
        "float": "float32",
        "double": "float64",
        "float16": "float16",
        "int64": "int64",
        "int32": "int32",
        "int16": "int16",
        "int8": "int8",
        "uint64": "uint64",
        "uint32": "uint32",
        "uint16": "uint16",
        "uint8": "uint8",
        "bool": "bool",
        "string": "object",
    }.items()
}
_MAP_VALUE = re.compile(r"map\(\w+,\s*(tensor\(\w+\))\)")


def _tensor(values: Any, node: Any) -> np.ndarray[Any, Any]:
    """``values`` as the element type (and rank) the graph input ``node`` declares."""
    dtype = ELEMENT_TYPES.get(node.type)
    if dtype is None:
        raise InvalidArgumentError(
            f"The ONNX graph's input {node.name!r} has type {node.type}; Loopwise can feed "
            f"{sorted(ELEMENT_TYPES)}. Wrap the model in a PythonModel that prepares its input.",
            parameter="X",
        )
    array = np.asarray(values)
    if dtype.kind == "O":
        # String tensors: ONNX Runtime wants Python str objects.
        array = array.astype(str).astype(object)
    else:
        array = array.astype(dtype, copy=False)
    if array.ndim == 1 and len(node.shape) == 2:
        array = array.reshape(-1, 1)
    return array


def _column_values(column: pd.Series) -> np.ndarray[Any, Any]:
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.to_numpy(dtype=object)
    return column.to_numpy()


class OnnxModel:
    """An ONNX Runtime session with ``predict(X)``: the graph's first output."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def __repr__(self) -> str:
        names = [i.name for i in self.session.get_inputs()]
        return f"{type(self).__name__}(inputs={names})"

    def _feed(self, X: Any) -> dict[str, np.ndarray[Any, Any]]:
        inputs = self.session.get_inputs()
        if len(inputs) == 1:
            values = X.to_numpy() if isinstance(X, pd.DataFrame) else X
            return {inputs[0].name: _tensor(values, inputs[0])}
        names = [i.name for i in inputs]
        if isinstance(X, pd.DataFrame):
            missing = [n for n in names if n not in X.columns]
            if missing:
                raise SignatureMismatchError(
                    f"The ONNX graph takes one input per column, {names}; the input lacks "
                    f"{missing}. Pass a DataFrame with those columns.",
                    missing=missing,
                    expected=names,
                )
            return {i.name: _tensor(_column_values(X[i.name]), i) for i in inputs}
        array = np.asarray(X)
        if array.ndim != 2 or array.shape[1] != len(inputs):
            raise SignatureMismatchError(
                f"The ONNX graph takes one input per column, {names}: expected a DataFrame with "
                f"those columns or an array of shape [n, {len(inputs)}]; got shape "
                f"{list(array.shape)}.",
                expected=names,
                received=list(array.shape),
            )
        return {i.name: _tensor(array[:, k], i) for k, i in enumerate(inputs)}

    def _run(self, output: str, X: Any) -> Any:
        return self.session.run([output], self._feed(X))[0]

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        return np.asarray(self._run(self.session.get_outputs()[0].name, X))


class OnnxClassifier(OnnxModel):
    """An ONNX classifier: ``predict_proba`` gives one column per class, in class order."""

    def __init__(self, session: Any, classes: Sequence[Any] | None = None) -> None:
        super().__init__(session)
        self._labels = list(classes) if classes is not None else None
        if classes is not None:
            self.classes_ = np.asarray(classes)

    def predict_proba(self, X: Any) -> np.ndarray[Any, Any]:
        output = next(o for o in self.session.get_outputs() if o.name in PROBA_OUTPUTS)
        result = self._run(output.name, X)
        if not isinstance(result, list):
            return np.asarray(result)
        # ZipMap: one {class: probability} dict per row, keyed in the graph's class order.
        labels = self._labels if self._labels is not None else list(result[0] if result else [])
        value_type = _MAP_VALUE.search(output.type)
        dtype = ELEMENT_TYPES.get(value_type[1]) if value_type else None
        return np.array(
            [[row[label] for label in labels] for row in result],
            dtype=dtype if dtype is not None else np.float64,
        ).reshape(len(result), len(labels))


def _wrap(session: Any, classes: Sequence[Any] | None) -> OnnxModel:
    if any(o.name in PROBA_OUTPUTS for o in session.get_outputs()):
        return OnnxClassifier(session, classes)
    return OnnxModel(session)


def _model_bytes(model: Any) -> bytes:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise InvalidArgumentError(
                f"Expected an onnx.ModelProto, the path of an .onnx file or its bytes; {str(path)!r} "
                "is not a file.",
                parameter="model",
            )
        return path.read_bytes()
    serialize = getattr(model, "SerializeToString", None)
    if "onnx" in module_of(model) and callable(serialize):
        return bytes(serialize())
    raise InvalidArgumentError(
        f"Expected an onnx.ModelProto, the path of an .onnx file or its bytes; got "
        f"{type(model).__module__}.{type(model).__qualname__}.",
        parameter="model",
    )


def _session(data: bytes) -> Any:
    ort = require_extra("onnxruntime", EXTRA)
    # From bytes rather than a path: a graph cannot then pull in files beside it (external data).
    return ort.InferenceSession(data, providers=PROVIDERS)


def _node_spec(node: Any) -> dict[str, Any]:
    shape = [d if isinstance(d, (int, str)) else None for d in (node.shape or [])]
    return {"name": node.name, "type": node.type, "shape": shape}


def _class_labels(proto: Any, helper: Any) -> list[Any] | None:
    """The class labels a classifier graph declares, ZipMap's first (its keys order the rows)."""
    nodes = sorted(proto.graph.node, key=lambda n: n.op_type != "ZipMap")
    for node in nodes:
        for attribute in node.attribute:
            if attribute.name in CLASS_LABELS:
                labels = list(helper.get_attribute_value(attribute))
                if labels:
                    return [v.decode() if isinstance(v, bytes) else int(v) for v in labels]
    return None


class OnnxFlavour(Flavour):
    name = "onnx"
    package = "onnx"
    extra = EXTRA

    def predictor(self, model: Any) -> Any:
        return _wrap(_session(_model_bytes(model)), None)

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        onnx = require_extra("onnx", EXTRA)
        ort = require_extra("onnxruntime", EXTRA)
        data = _model_bytes(model)
        try:
            proto = onnx.load_model_from_string(data)
            session = _session(data)
        except Exception as exc:  # protobuf and ONNX Runtime raise their own error types
            raise InvalidArgumentError(
                f"Expected a valid ONNX model that ONNX Runtime can run on the CPU; it could not "
                f"be loaded: {exc}",
                parameter="model",
            ) from exc
        (folder / FILE).write_bytes(data)
        return {
            "file": FILE,
            "inputs": [_node_spec(i) for i in session.get_inputs()],
            "outputs": [_node_spec(o) for o in session.get_outputs()],
            "classes": _class_labels(proto, onnx.helper),
            "opsets": {o.domain or "ai.onnx": int(o.version) for o in proto.opset_import},
            "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
            "onnxruntime_version": ort.__version__,
        }

    def load(
        self,
        folder: Path,
        metadata: Mapping[str, Any],
        *,
        allow_pickle: bool = False,
        trusted_types: Collection[str] = (),
    ) -> Any:
        require_extra("onnxruntime", EXTRA)  # say what is missing before touching the files
        data = model_file(folder, metadata, FILE).read_bytes()
        return _wrap(_session(data), metadata.get("classes"))
