"""Custom Python models, stored with pickle: an explicit opt-in, because loading runs code."""

from __future__ import annotations

import pickle
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from loopwise.errors import InvalidArgumentError, UnsafeModelError
from loopwise.registry.flavours.base import Flavour, model_file

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

    def load(
        self,
        folder: Path,
        metadata: Mapping[str, Any],
        *,
        allow_pickle: bool = False,
        trusted_types: Collection[str] = (),
    ) -> Any:
        # A matching digest says the bytes are the registered ones, not that whoever
        # registered them is trusted to run code here: only the caller can say that.
        if not allow_pickle:
            raise pickle_refused()
        with model_file(folder, metadata, FILE).open("rb") as f:
            return pickle.load(f)


def pickle_refused(ref: str = "", project: str = "") -> UnsafeModelError:
    """The error for loading a pickle without the loader's ``allow_pickle=True``."""
    which = f"Model {ref}" if ref else "This model"
    whose = f"project {project!r}" if project else "its project"
    return UnsafeModelError(
        f"{which} is stored with pickle (flavour 'python'): loading it runs whatever code its "
        f"file holds, and anyone who may register models in {whose} can write that file. It "
        "was not loaded. If you trust them, opt in where you load it: "
        "lw.models.load(..., allow_pickle=True), or `loopwise serve --allow-pickle`.",
        flavour="python",
        ref=ref,
    )
