"""LightGBM models in LightGBM's own text format, which loads without running code.

The file holds the trees and, for pandas input, the categories of each categorical column, so a
reloaded ``lightgbm.Booster`` encodes category columns exactly as the trained model did. A
classifier's labels are recorded beside the file, to turn probabilities back into labels.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from loopwise.errors import InvalidArgumentError, require_extra
from loopwise.registry.flavours.base import Flavour, model_file

__all__ = ["LightGBMClassifier", "LightGBMFlavour", "LightGBMModel"]

FILE = "model.txt"
EXTRA = "lightgbm"


class LightGBMModel:
    """A LightGBM booster read from its model file: ``predict`` is the booster's own."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.booster!r})"

    @property
    def feature_name_(self) -> list[str]:
        names: list[str] = self.booster.feature_name()
        return names

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        return np.asarray(self.booster.predict(X))


class LightGBMClassifier(LightGBMModel):
    """A LightGBM classifier: labels and probabilities as ``LGBMClassifier`` gives them."""

    def __init__(self, booster: Any, classes: np.ndarray[Any, Any]) -> None:
        super().__init__(booster)
        self.classes_ = classes

    def predict_proba(self, X: Any) -> np.ndarray[Any, Any]:
        proba = np.asarray(self.booster.predict(X))
        if proba.ndim == 1:  # binary: the booster gives P(second class) only
            return np.vstack((1.0 - proba, proba)).transpose()
        return proba

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        labels: np.ndarray[Any, Any] = self.classes_[np.argmax(self.predict_proba(X), axis=1)]
        return labels


class LightGBMFlavour(Flavour):
    name = "lightgbm"
    package = "lightgbm"
    extra = EXTRA

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        lightgbm = require_extra("lightgbm", EXTRA)
        path = folder / FILE
        metadata: dict[str, Any] = {
            "file": FILE,
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "lightgbm_version": lightgbm.__version__,
        }
        if isinstance(model, lightgbm.Booster):
            model.save_model(path)
            return {**metadata, "kind": "booster"}
        if not isinstance(model, lightgbm.LGBMModel):
            raise InvalidArgumentError(
                f"Expected a lightgbm.Booster or a LightGBM scikit-learn model (LGBMClassifier, "
                f"LGBMRegressor, …), got {metadata['class']}.",
                parameter="model",
            )
        if not getattr(model, "fitted_", False):
            raise InvalidArgumentError(
                f"Expected a fitted model, got an unfitted {type(model).__name__}. Call fit first.",
                parameter="model",
            )
        model.booster_.save_model(path)
        if not isinstance(model, lightgbm.LGBMClassifier):
            return {**metadata, "kind": "regressor"}
        if callable(model.objective):
            # With a custom objective the booster gives raw scores, not probabilities, and the
            # function itself cannot be stored without pickle.
            raise InvalidArgumentError(
                "Expected an LGBMClassifier trained with a built-in objective; this one uses a "
                "custom objective function, which LightGBM's model file cannot hold. Log "
                "model.booster_ instead (its predict gives raw scores).",
                parameter="model",
            )
        classes = np.asarray(model.classes_)
        return {
            **metadata,
            "kind": "classifier",
            "classes": classes.tolist(),
            "classes_dtype": classes.dtype.str if classes.dtype.kind != "O" else "object",
        }

    def load(
        self,
        folder: Path,
        metadata: Mapping[str, Any],
        *,
        allow_pickle: bool = False,
        trusted_types: Collection[str] = (),
    ) -> Any:
        lightgbm = require_extra("lightgbm", EXTRA)
        path = model_file(folder, metadata, FILE)
        booster = lightgbm.Booster(model_file=str(path))
        if metadata.get("kind") == "classifier":
            classes = np.asarray(metadata["classes"], dtype=np.dtype(metadata["classes_dtype"]))
            return LightGBMClassifier(booster, classes)
        return LightGBMModel(booster)
