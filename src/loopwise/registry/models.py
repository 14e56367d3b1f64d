"""The model registry as users call it: ``lw.models.load("employment@production")`` and friends.

References name a version three ways: ``employment`` (the latest version), ``employment/3``
(version 3) and ``employment@production`` (whatever the alias points at).
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from loopwise.context import current
from loopwise.errors import InvalidArgumentError, LoopwiseError, UnsafeModelError
from loopwise.registry.flavours import detect_flavour, get_flavour
from loopwise.registry.flavours.python import pickle_refused
from loopwise.registry.signature import check_input, infer_signature
from loopwise.store import ModelVersion, RegisteredModel, Store
from loopwise.store.checks import check_name

__all__ = [
    "LoadedClassifier",
    "LoadedModel",
    "delete_alias",
    "get",
    "list_models",
    "load",
    "log_model",
    "parse_ref",
    "set_alias",
    "versions",
]

log = logging.getLogger(__name__)
_REF = re.compile(
    r"^(?P<name>[A-Za-z0-9_.\-]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_.\-]+))?$"
)


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """``(name, version, alias)`` from ``name``, ``name/3`` or ``name@alias``."""
    match = _REF.match(ref) if isinstance(ref, str) else None
    if match is None:
        raise InvalidArgumentError(
            f"Expected a model reference like 'employment', 'employment/3' or "
            f"'employment@production', got {ref!r}.",
            parameter="ref",
        )
    version = match["version"]
    return match["name"], int(version) if version else None, match["alias"]


def _context(store: Store | None, project: str | None) -> tuple[Store, str]:
    if store is not None and project is not None:
        return store, project
    ctx = current()
    return store or ctx.store, project or ctx.project


def get(ref: str, *, store: Store | None = None, project: str | None = None) -> ModelVersion:
    """The registry record of a model version."""
    store, project = _context(store, project)
    name, version, alias = parse_ref(ref)
    if alias is not None:
        version = store.resolve_alias(project, name, alias)
    if version is None:
        versions = store.list_model_versions(project, name)
        return versions[-1]
    return store.get_model_version(project, name, version)


def log_model(
    model: Any,
    name: str,
    *,
    input_example: Any = None,
    flavour: str | None = None,
    allow_pickle: bool = False,
    description: str | None = None,
    run_id: str | None = None,
    store: Store | None = None,
    project: str | None = None,
) -> ModelVersion:
    """Save ``model`` in a safe format and register it as the next version of ``name``.

    ``input_example`` (a few rows) gives the signature that inputs are checked against. Models
    with no safe format need ``allow_pickle=True``: loading a pickle runs code.
    """
    check_name(name, "model")  # before any work on the model's files
    store, project = _context(store, project)
    chosen = get_flavour(flavour) if flavour is not None else detect_flavour(model, allow_pickle)
    if chosen.uses_pickle and not allow_pickle:
        raise UnsafeModelError(
            f"Flavour {chosen.name!r} stores the model with pickle, which runs code on load. "
            "Pass allow_pickle=True to accept that (only load models you trust).",
            model_type=type(model).__qualname__,
        )
    signature = None
    if input_example is not None:
        predictor = chosen.predictor(model)
        try:
            output = (
                np.asarray(predictor.predict(input_example))
                if hasattr(predictor, "predict")
                else None
            )
        except LoopwiseError:
            raise
        except Exception as exc:
            raise InvalidArgumentError(
                f"The model could not predict its input_example ({type(exc).__name__}: {exc}). "
                "Pass a few rows of the data it was trained on, with the same columns and types.",
                parameter="input_example",
            ) from exc
        signature = infer_signature(input_example, output)
    with tempfile.TemporaryDirectory(prefix="loopwise-model-") as tmp:
        folder = Path(tmp)
        metadata = chosen.save(model, folder)
        digest = store.artifacts.put_tree(folder)
    if chosen.uses_pickle:
        log.warning(
            "Model %r is stored with pickle: loading it runs code. Load it only if you trust it.",
            name,
        )
    return store.create_model_version(
        project,
        name,
        flavour=chosen.name,
        artifact_digest=digest,
        run_id=run_id,
        signature=signature,
        metadata=metadata,
        description=description,
    )


class LoadedModel:
    """A registered model ready to predict; inputs are checked against its signature."""

    def __init__(self, version: ModelVersion, model: Any) -> None:
        self.version = version
        self.model = model

    def __repr__(self) -> str:
        return f"LoadedModel({self.version.ref}, flavour={self.version.flavour!r})"

    @property
    def signature(self) -> dict[str, Any] | None:
        return self.version.signature

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        return np.asarray(self.model.predict(check_input(self.signature, X)))

    def __getattr__(self, name: str) -> Any:
        # Reach the wrapped model's own attributes, e.g. ``classes_``.
        if name.startswith("__") or name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)


class LoadedClassifier(LoadedModel):
    """A loaded model that also gives class probabilities."""

    def predict_proba(self, X: Any) -> np.ndarray[Any, Any]:
        return np.asarray(self.model.predict_proba(check_input(self.signature, X)))


def load(
    ref: str | ModelVersion,
    *,
    store: Store | None = None,
    project: str | None = None,
    allow_pickle: bool = False,
    trusted_types: Collection[str] = (),
) -> LoadedModel:
    """Load a model version after verifying every file against the registry's digests.

    Whoever may register models in the project writes the version, so nothing stored decides
    what runs here: a pickled model (flavour ``python``) loads only with ``allow_pickle=True``,
    and skops builds only the types Loopwise trusts plus ``trusted_types``. Pass them only for
    models whose every possible author you trust.
    """
    store, project = _context(store, project)
    version = ref if isinstance(ref, ModelVersion) else get(ref, store=store, project=project)
    flavour = get_flavour(version.flavour)
    if flavour.uses_pickle and not allow_pickle:
        raise pickle_refused(version.ref, version.project)  # before fetching any file
    if isinstance(trusted_types, str):
        raise InvalidArgumentError(
            f"Expected trusted_types as a list of type names, got the string "
            f"{trusted_types[:120]!r}; pass [{trusted_types[:120]!r}].",
            parameter="trusted_types",
        )
    with tempfile.TemporaryDirectory(prefix="loopwise-load-") as tmp:
        folder = store.artifacts.get_tree(
            version.artifact_digest, Path(tmp), name=f"model {version.ref}"
        )
        model = flavour.load(
            folder, version.metadata, allow_pickle=allow_pickle, trusted_types=trusted_types
        )
    wrapper = LoadedClassifier if hasattr(model, "predict_proba") else LoadedModel
    return wrapper(version, model)


def list_models(*, store: Store | None = None, project: str | None = None) -> list[RegisteredModel]:
    store, project = _context(store, project)
    return store.list_models(project)


def versions(
    name: str, *, store: Store | None = None, project: str | None = None
) -> list[ModelVersion]:
    store, project = _context(store, project)
    return store.list_model_versions(project, name)


def set_alias(
    name: str, version: int, alias: str, *, store: Store | None = None, project: str | None = None
) -> int | None:
    """Point ``alias`` at ``version`` in one atomic step; returns the version it left."""
    store, project = _context(store, project)
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidArgumentError(
            f"Expected a version number, got {version!r}.", parameter="version"
        )
    return store.set_alias(project, name, alias, version)


def delete_alias(
    name: str, alias: str, *, store: Store | None = None, project: str | None = None
) -> int:
    store, project = _context(store, project)
    return store.delete_alias(project, name, alias)
