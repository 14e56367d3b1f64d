"""Model flavours, tried in order when a model is logged without naming one.

XGBoost and LightGBM come before scikit-learn: their scikit-learn wrappers subclass scikit-learn
classes, and their native formats are the better home for them.
"""

from __future__ import annotations

from typing import Any

from loopwise.errors import InvalidArgumentError, UnsafeModelError
from loopwise.registry.flavours.base import Flavour
from loopwise.registry.flavours.lightgbm import LightGBMFlavour
from loopwise.registry.flavours.onnx import OnnxFlavour
from loopwise.registry.flavours.python import PythonFlavour
from loopwise.registry.flavours.sklearn import SklearnFlavour
from loopwise.registry.flavours.xgboost import XGBoostFlavour

__all__ = ["FLAVOURS", "Flavour", "detect_flavour", "get_flavour"]

FLAVOURS: dict[str, Flavour] = {
    f.name: f
    for f in (
        XGBoostFlavour(),
        LightGBMFlavour(),
        SklearnFlavour(),
        OnnxFlavour(),
        PythonFlavour(),
    )
}


def get_flavour(name: str) -> Flavour:
    try:
        return FLAVOURS[name]
    except KeyError:
        raise InvalidArgumentError(
            f"Unknown model flavour {name!r}. Expected one of {sorted(FLAVOURS)}.",
            parameter="flavour",
        ) from None


def detect_flavour(model: Any, allow_pickle: bool = False) -> Flavour:
    for flavour in FLAVOURS.values():
        if not flavour.uses_pickle and flavour.handles(model):
            return flavour
    if "python" in FLAVOURS and FLAVOURS["python"].handles(model):
        if allow_pickle:
            return FLAVOURS["python"]
        raise UnsafeModelError(
            f"Loopwise has no safe format for {type(model).__module__}.{type(model).__qualname__}. "
            f"Safe flavours: {sorted(n for n, f in FLAVOURS.items() if not f.uses_pickle)}. To store it "
            "with pickle anyway (loading it runs code: only load models you trust) pass allow_pickle=True.",
            model_type=type(model).__qualname__,
        )
    raise InvalidArgumentError(
        f"Expected a model with a predict method, got {type(model).__name__}.", parameter="model"
    )
