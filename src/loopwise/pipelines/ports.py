"""What can flow between steps, read from type annotations, and how each kind is checked.

A port is one input or output of a step. Its kind decides how a value is stored between steps
(a dataset version, a model's files, an artifact tree, or canonical JSON) and which ports may
be connected: the check runs when the pipeline is built, before any step runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Union

from loopwise.errors import InvalidArgumentError

__all__ = [
    "Model",
    "Port",
    "PortKind",
    "assignable",
    "canonical_json",
    "describe",
    "port_kind",
    "value_hash",
    "value_matches",
]


class Model:
    """Annotate a step's output (or input) with ``Model`` for a fitted model of any flavour.

    Between steps it is saved with the model's flavour (e.g. skops for scikit-learn), never
    with pickle unless the step says ``allow_pickle=True``; the next step gets it loaded back.
    """


class PortKind(StrEnum):
    VALUE = "value"
    """A JSON value: None, bool, int, float, str, and lists and dicts of them."""
    DATAFRAME = "dataframe"
    """A pandas DataFrame, stored as a dataset version."""
    DATASET = "dataset"
    """A ``DatasetVersion`` already in the store."""
    MODEL = "model"
    """A fitted model object, stored in its flavour's format."""
    MODEL_VERSION = "model_version"
    """A registered ``ModelVersion``."""
    ARTIFACT = "artifact"
    """A file or folder (``pathlib.Path``), stored as a content-addressed tree."""
    ANY = "any"
    """Not annotated: the kind is decided by the value at run time."""


@dataclass(frozen=True)
class Port:
    name: str
    kind: PortKind
    annotation: Any
    """The annotation as written (``Any`` when there was none)."""


_JSON_SCALARS = (type(None), bool, int, float, str)
_STORABLE = (
    "Model (a fitted model), pd.DataFrame, DatasetVersion, ModelVersion, pathlib.Path, or a JSON "
    "value (None, bool, int, float, str, and lists, tuples and dicts of them)"
)


def _is_dataframe(annotation: Any) -> bool:
    return getattr(annotation, "__module__", "").startswith("pandas") and (
        getattr(annotation, "__name__", "") == "DataFrame"
    )


def _entity(annotation: Any, name: str) -> bool:
    return (
        isinstance(annotation, type)
        and annotation.__name__ == name
        and annotation.__module__.startswith("loopwise.")
    )


def port_kind(annotation: Any) -> PortKind | None:
    """The kind an annotation declares, or None when Loopwise cannot store it between steps."""
    if annotation is Any or annotation is None or annotation is type(None):
        return PortKind.ANY if annotation is Any else PortKind.VALUE
    if annotation is Model:
        return PortKind.MODEL
    if _is_dataframe(annotation):
        return PortKind.DATAFRAME
    if _entity(annotation, "DatasetVersion"):
        return PortKind.DATASET
    if _entity(annotation, "ModelVersion"):
        return PortKind.MODEL_VERSION
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return PortKind.ARTIFACT
    return PortKind.VALUE if _is_json_type(annotation) else None


def collection_of(annotation: Any) -> Any | None:
    """``X`` for an input annotated ``list[X]`` or ``dict[str, X]`` where X is a stored kind
    (e.g. ``dict[str, Model]``): such an input takes a list or dict of step outputs."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and len(args) == 1:
        element = args[0]
    elif origin is dict and len(args) == 2 and args[0] is str:
        element = args[1]
    else:
        return None
    kind = port_kind(element)
    return element if kind not in (None, PortKind.VALUE, PortKind.ANY) else None


def _is_json_type(annotation: Any) -> bool:
    if annotation is Any or annotation in _JSON_SCALARS or annotation in (list, dict, tuple):
        return True
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return all(isinstance(a, _JSON_SCALARS) for a in args)
    if origin in (Union, types.UnionType):
        return all(_is_json_type(a) for a in args)
    if origin in (list, tuple):
        return all(a is Ellipsis or _is_json_type(a) for a in args)
    if origin is dict:
        return len(args) == 2 and args[0] is str and _is_json_type(args[1])
    return False


def describe(annotation: Any) -> str:
    """An annotation as a reader would write it."""
    if annotation is Any:
        return "Any"
    if isinstance(annotation, type) and not typing.get_args(annotation):
        if _is_dataframe(annotation):
            return "pd.DataFrame"
        return annotation.__name__
    text = str(annotation)
    for long, short in _SHORT_NAMES:
        text = text.replace(long, short)
    return text


_SHORT_NAMES = (
    ("typing.", ""),
    ("pandas.core.frame.DataFrame", "pd.DataFrame"),
    ("pandas.DataFrame", "pd.DataFrame"),
    ("loopwise.pipelines.ports.", ""),
    ("loopwise.store.entities.", ""),
    ("pathlib.", ""),
)


def storable_hint() -> str:
    return _STORABLE


# -- type compatibility between connected ports ------------------------------------------------

_COMPATIBLE = {
    PortKind.DATAFRAME: {PortKind.DATAFRAME, PortKind.DATASET},
    PortKind.DATASET: {PortKind.DATAFRAME, PortKind.DATASET},
    PortKind.MODEL: {PortKind.MODEL},
    PortKind.MODEL_VERSION: {PortKind.MODEL_VERSION, PortKind.MODEL},
    PortKind.ARTIFACT: {PortKind.ARTIFACT},
}


def assignable(output: Port, input_annotation: Any) -> bool:
    """Whether an output may feed an input annotated ``input_annotation``.

    A DataFrame and a dataset version convert into each other, and a registered model version
    can feed a ``Model`` input (it is loaded); JSON values follow their annotations, with an
    ``int`` accepted where a ``float`` is expected.
    """
    target = port_kind(input_annotation)
    if output.kind is PortKind.ANY or target is PortKind.ANY or target is None:
        return True
    if output.kind is PortKind.VALUE:
        return target is PortKind.VALUE and _json_assignable(output.annotation, input_annotation)
    return target in _COMPATIBLE[output.kind]


def _json_assignable(source: Any, target: Any) -> bool:
    if source is Any or target is Any or source == target:
        return True
    s_origin, t_origin = typing.get_origin(source), typing.get_origin(target)
    if t_origin in (Union, types.UnionType):
        return any(_json_assignable(source, t) for t in typing.get_args(target))
    if s_origin in (Union, types.UnionType):
        return all(_json_assignable(s, target) for s in typing.get_args(source))
    if s_origin is typing.Literal:
        return all(value_matches(v, target) for v in typing.get_args(source))
    if source is int and target is float:
        return True
    if source is bool and target in (int, float):
        return False
    s_base = s_origin or source
    t_base = t_origin or target
    if s_base is not t_base:
        return False
    s_args, t_args = typing.get_args(source), typing.get_args(target)
    if not s_args or not t_args:
        return True
    if s_base is dict:
        return _json_assignable(s_args[1], t_args[1])
    if s_base is list:
        return _json_assignable(s_args[0], t_args[0])
    return len(s_args) == len(t_args) and all(
        _json_assignable(s, t) for s, t in zip(s_args, t_args, strict=True)
    )


def value_matches(value: Any, annotation: Any) -> bool:
    """Whether a constant (a param, or a literal in the pipeline) fits a JSON annotation."""
    kind = port_kind(annotation)
    if kind in (PortKind.ANY, None):
        return True
    if kind is not PortKind.VALUE:
        return False
    if annotation is Any:
        return True
    if annotation is type(None) or annotation is None:
        return value is None
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (bool, str):
        return isinstance(value, annotation)
    if annotation in (list, tuple):
        return isinstance(value, list | tuple)
    if annotation is dict:
        return isinstance(value, dict)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return value in args
    if origin in (Union, types.UnionType):
        return any(value_matches(value, a) for a in args)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(args) == len(value) and all(
                value_matches(v, a) for v, a in zip(value, args, strict=True)
            )
        return all(value_matches(v, args[0]) for v in value) if args else True
    if origin is dict:
        return isinstance(value, dict) and all(
            isinstance(k, str) and value_matches(v, args[1]) for k, v in value.items()
        )
    return False


# -- canonical JSON ---------------------------------------------------------------------------


def _plain(value: Any, where: str) -> Any:
    """``value`` as plain JSON types (NumPy scalars become Python numbers), or an error."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return {"__float__": repr(value)}
        return float(value)
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidArgumentError(
                    f"Expected string keys in {where}, got {key!r} ({type(key).__name__}). JSON "
                    "objects have string keys: convert the key with str().",
                    parameter=where,
                )
            out[key] = _plain(item, f"{where}[{key!r}]")
        return out
    item = getattr(value, "item", None)  # NumPy scalars
    if callable(item) and getattr(value, "shape", None) == ():
        return _plain(item(), where)
    raise InvalidArgumentError(
        f"Expected a JSON value in {where}, got {type(value).__module__}.{type(value).__qualname__}. "
        f"Steps pass {_STORABLE}; annotate the port with one of these.",
        parameter=where,
    )


def canonical_json(value: Any, where: str = "value") -> str:
    """One text per value: sorted keys, no spaces, tuples as lists."""
    return json.dumps(_plain(value, where), sort_keys=True, separators=(",", ":"))


def value_hash(value: Any, where: str = "value") -> str:
    return "sha256:" + hashlib.sha256(canonical_json(value, where).encode()).hexdigest()


def from_json(text: str) -> Any:
    def revive(obj: dict[str, Any]) -> Any:
        if set(obj) == {"__float__"}:
            return float(obj["__float__"])
        return obj

    return json.loads(text, object_hook=revive)
