"""The flavour interface: how one kind of model is saved to files and loaded back.

A version's metadata is written by whoever registered it, so ``load`` treats it as input from
someone with fewer rights than the process loading it: ``model_file`` keeps every file it names
inside the digest-verified folder, and what may run (pickle, extra skops types) is decided by the
caller's ``allow_pickle`` and ``trusted_types``, never by the record.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from loopwise.errors import UnsafeModelError

__all__ = ["Flavour", "model_file", "module_of"]

MAX_QUOTED_CHARS = 120
"""How much of a stored value an error message quotes."""


def model_file(folder: Path, metadata: Mapping[str, Any], default: str) -> Path:
    """The file ``metadata["file"]`` (else ``default``) names, inside ``folder``.

    ``folder`` holds exactly the files whose digests matched the registry's manifest; an
    absolute path, a ``..`` step, a drive or a link that leads out of it is refused, so a
    version's metadata can never make the loader read a file the digest did not vouch for.
    """
    name = metadata.get("file", default)
    shown = repr(name)[:MAX_QUOTED_CHARS]
    if not isinstance(name, str) or not name or "\\" in name or "\0" in name:
        raise _outside(shown)
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts or ":" in relative.parts[0]:
        raise _outside(shown)
    root = Path(os.path.realpath(folder))
    path = Path(os.path.realpath(root / relative))
    if not path.is_relative_to(root) or path == root:
        raise _outside(shown)
    return path


def _outside(shown: str) -> UnsafeModelError:
    return UnsafeModelError(
        f"Expected the version's metadata 'file' to name one of the model's own files (a "
        f"relative path inside its verified folder), got {shown}, which points outside it. "
        "It was not loaded. Register the model again from its source.",
        file=shown,
    )


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
    def load(
        self,
        folder: Path,
        metadata: Mapping[str, Any],
        *,
        allow_pickle: bool = False,
        trusted_types: Collection[str] = (),
    ) -> Any:
        """An object with ``predict`` (and ``predict_proba`` where the model has it).

        ``folder`` holds the version's digest-verified files; read them through
        ``model_file``. ``allow_pickle`` and ``trusted_types`` come from the caller (the one
        who loads), and are the only way to let a file run code or build extra types.
        """

    def predictor(self, model: Any) -> Any:
        """The model as an object with ``predict(X)``, used to record the output signature.

        Most models are that already; flavours whose native objects predict differently (a raw
        XGBoost Booster wants a DMatrix, an ONNX graph needs a session) wrap them here, the same
        way ``load`` does.
        """
        return model
