"""One codec between the store's entities and the JSON the REST API carries.

``decode(cls, data)`` builds an entity of ``store/entities.py`` from a JSON object, driven by its
dataclass fields: enums from their values, traffic plans from ``TrafficPlan.to_json``'s shape,
floats (NaN and infinities arrive by name) from numbers or names. ``encode`` is the inverse.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import Any, TypeVar

from loopwise.store.entities import TrafficPlan

__all__ = ["decode", "encode", "json_float"]

T = TypeVar("T")
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def json_float(value: float) -> float | str:
    """A float as JSON carries it: NaN and infinities by name (the API's convention)."""
    return value if math.isfinite(value) else _NON_FINITE[repr(value)]


def _same(value: Any) -> Any:
    return value


def _converter(hint: Any) -> Callable[[Any], Any]:
    """How to turn the JSON of a field annotated ``hint`` into its value."""
    if hint is float:
        return float  # "NaN", "Infinity" and "-Infinity" parse as they should
    if hint is TrafficPlan:
        return TrafficPlan.from_json
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union) and len(args) == 2 and type(None) in args:
        inner = _converter(next(a for a in args if a is not type(None)))
        return _same if inner is _same else lambda v: None if v is None else inner(v)
    if origin is dict and len(args) == 2 and args[1] is float:
        return lambda v: {k: float(x) for k, x in v.items()}
    return _same


_CONVERTERS: dict[type[Any], dict[str, Callable[[Any], Any]]] = {}


def _converters(cls: type[Any]) -> dict[str, Callable[[Any], Any]]:
    """Each field's converter, worked out once per class (threads may race: same result)."""
    found = _CONVERTERS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = {f.name: _converter(hints[f.name]) for f in dataclasses.fields(cls)}
        _CONVERTERS[cls] = found
    return found


def decode(cls: type[T], data: Mapping[str, Any]) -> T:
    """The entity ``cls`` that the JSON object ``data`` describes (unknown keys: TypeError)."""
    converters = _converters(cls)
    return cls(**{key: converters.get(key, _same)(value) for key, value in data.items()})


def _encoded(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, TrafficPlan):
        return value.to_json()
    if isinstance(value, float):
        return json_float(value)
    if isinstance(value, Mapping):
        return {key: _encoded(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encoded(v) for v in value]
    return value


def encode(entity: Any, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The JSON object of an entity (a dataclass of ``store/entities.py``), without ``exclude``."""
    left_out = set(exclude)
    return {
        f.name: _encoded(getattr(entity, f.name))
        for f in dataclasses.fields(entity)
        if f.name not in left_out
    }
