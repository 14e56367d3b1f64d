"""Custom Python models, stored with pickle: an explicit opt-in, because loading runs code."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loopwise.errors import InvalidArgumentError
from loopwise.registry.flavours.base import Flavour

__all__ = ["PythonFlavour", "PythonModel"]

FILE = "model.pkl"


class PythonModel:
    """Base class for custom models: implement ``predict`` (and ``predict_proba`` if useful).

    Log one with ``run.log_model(MyModel(), name=..., allow_pickle=True)``.
    """

    def predict(self, X: Any) -> Any:
        raise NotImplementedError("Implement predict(self, X) in your PythonModel subclass.")


class PythonFlavour(Flavour):
    name = "python"
    extra = ""
    uses_pickle = True

    def handles(self, model: Any) -> bool:
        return callable(getattr(model, "predict", None))

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        # cloudpickle stores classes defined in a script or notebook by value, so the model
        # loads in another process that never saw that script.
        import cloudpickle

        try:
            with (folder / FILE).open("wb") as f:
                cloudpickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise InvalidArgumentError(
                f"Could not pickle the {type(model).__qualname__} model: {exc}. Models that hold "
                "open files, locks or connections cannot be stored; keep only what predict needs.",
                parameter="model",
            ) from exc
        return {
            "file": FILE,
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "pickle": True,
        }

    def load(self, folder: Path, metadata: Mapping[str, Any]) -> Any:
        # Only reached for files whose digest matched the registry's record.
        with (folder / str(metadata.get("file", FILE))).open("rb") as f:
            return pickle.load(f)
