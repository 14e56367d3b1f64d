"""The flavour interface: how one kind of model is saved to files and loaded back."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

__all__ = ["Flavour", "module_of"]


def module_of(model: Any) -> set[str]:
    """Top-level packages of the model's class and its bases (no heavy imports needed)."""
    return {cls.__module__.split(".")[0] for cls in type(model).__mro__}


class Flavour(ABC):
    """One model format. Implementations must pass ``tests/registry/flavour_checks.py``."""

    name: ClassVar[str]
    extra: ClassVar[str]
    """The pip extra that installs what this flavour needs."""
    uses_pickle: ClassVar[bool] = False

    package: ClassVar[str] = ""
    """The top-level package whose models this flavour handles (e.g. ``xgboost``)."""

    def handles(self, model: Any) -> bool:
        """Whether ``model`` is of this flavour (cheap; must not import optional packages)."""
        return bool(self.package) and self.package in module_of(model)

    @abstractmethod
    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        """Write the model's files into ``folder``; return what ``load`` needs to read them."""

    @abstractmethod
    def load(self, folder: Path, metadata: Mapping[str, Any]) -> Any:
        """An object with ``predict`` (and ``predict_proba`` where the model has it)."""

    def predictor(self, model: Any) -> Any:
        """The model as an object with ``predict(X)``, used to record the output signature.

        Most models are that already; flavours whose native objects predict differently (a raw
        XGBoost Booster wants a DMatrix, an ONNX graph needs a session) wrap them here, the same
        way ``load`` does.
        """
        return model
