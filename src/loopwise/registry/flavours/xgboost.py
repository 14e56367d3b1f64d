"""XGBoost models in XGBoost's own UBJSON format, which loads without running code.

The scikit-learn wrappers (``XGBClassifier``, ``XGBRegressor``, …) are rebuilt as their class with
the plain-valued parameters recorded at save time, then read the file; a raw ``Booster`` is
wrapped so that ``predict`` takes a DataFrame or an array like every other loaded model.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from loopwise.errors import InvalidArgumentError, UnsafeModelError, require_extra
from loopwise.registry.flavours.base import Flavour, model_file

__all__ = ["BoosterModel", "XGBoostFlavour"]

FILE = "model.ubj"
EXTRA = "xgboost"
# The classes a model may be rebuilt as: the class name comes from stored metadata, so it is
# checked against this list rather than looked up blindly in the xgboost namespace.
WRAPPERS = frozenset(
    {"XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor", "XGBModel"}
)


class BoosterModel:
    """A raw ``xgboost.Booster`` whose ``predict`` takes a DataFrame or an array."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def __repr__(self) -> str:
        return f"BoosterModel({self.booster!r})"

    @property
    def feature_names(self) -> list[str] | None:
        names: list[str] | None = self.booster.feature_names
        return names

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        xgboost = require_extra("xgboost", EXTRA)
        # enable_categorical lets pandas category columns through; it changes nothing otherwise.
        data = xgboost.DMatrix(X, enable_categorical=True)
        return np.asarray(self.booster.predict(data))


_SKIP = object()


def _plain(value: Any) -> Any:
    """``value`` as JSON-safe data, or ``_SKIP`` when it is not plain data (callables, arrays)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _SKIP
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return _SKIP if any(i is _SKIP for i in items) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        entries = {k: _plain(v) for k, v in value.items()}
        return _SKIP if any(v is _SKIP for v in entries.values()) else entries
    return _SKIP


def _wrapper_class(model: Any) -> str:
    for cls in type(model).__mro__:
        if cls.__module__.startswith("xgboost") and cls.__name__ in WRAPPERS:
            return cls.__name__
    return "XGBModel"


class XGBoostFlavour(Flavour):
    name = "xgboost"
    package = "xgboost"
    extra = EXTRA

    def predictor(self, model: Any) -> Any:
        xgboost = require_extra("xgboost", EXTRA)
        return BoosterModel(model) if isinstance(model, xgboost.Booster) else model

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        xgboost = require_extra("xgboost", EXTRA)
        path = folder / FILE
        metadata: dict[str, Any] = {"file": FILE, "xgboost_version": xgboost.__version__}
        if isinstance(model, xgboost.Booster):
            model.save_model(path)
            return {**metadata, "kind": "booster", "class": "Booster"}
        if not isinstance(model, xgboost.XGBModel):
            raise InvalidArgumentError(
                f"Expected an xgboost.Booster or an XGBoost scikit-learn model (XGBClassifier, "
                f"XGBRegressor, …), got {type(model).__module__}.{type(model).__qualname__}.",
                parameter="model",
            )
        try:
            model.get_booster()
        except (ValueError, AttributeError) as exc:
            raise InvalidArgumentError(
                f"Expected a fitted model, got an unfitted {type(model).__name__}. Call fit first.",
                parameter="model",
            ) from exc
        model.save_model(path)
        # The file holds the trees and training configuration but not every constructor
        # argument (e.g. ``missing``), so the plain-valued ones are recorded beside it.
        params = {
            key: plain
            for key, value in model.get_params(deep=False).items()
            if (plain := _plain(value)) is not _SKIP
        }
        return {**metadata, "kind": "sklearn", "class": _wrapper_class(model), "params": params}

    def load(
        self,
        folder: Path,
        metadata: Mapping[str, Any],
        *,
        allow_pickle: bool = False,
        trusted_types: Collection[str] = (),
    ) -> Any:
        xgboost = require_extra("xgboost", EXTRA)
        path = model_file(folder, metadata, FILE)
        if metadata.get("kind") == "booster":
            return BoosterModel(xgboost.Booster(model_file=str(path)))
        class_name = str(metadata.get("class"))
        if class_name not in WRAPPERS:
            raise UnsafeModelError(
                f"Expected the model class to be one of {sorted(WRAPPERS)}, got {class_name!r} in "
                "the version's metadata. It was not loaded. Register the model again.",
                model_type=class_name,
            )
        model = getattr(xgboost, class_name)(**dict(metadata.get("params", {})))
        model.load_model(path)
        return model
