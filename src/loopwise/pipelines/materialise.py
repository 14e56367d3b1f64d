"""Stored step outputs turned back into the objects a step (or its caller) receives.

Used where a step runs (``execute``) and where a finished run's output is loaded
(``StepResult.output``); ``import loopwise.pipelines`` reaches it through ``results``, so what
only loading needs (pyarrow, pandas, the model flavours) is imported on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopwise.errors import InvalidArgumentError, UnsafeModelError
from loopwise.pipelines.ports import PortKind, from_json

if TYPE_CHECKING:
    from loopwise.store import Store

__all__ = ["materialise"]


def materialise(
    stored: Mapping[str, Any],
    target: PortKind,
    store: Store,
    project: str,
    scratch: Path,
    allow_pickle: bool = False,
) -> Any:
    """The object a step receives for one stored output, converted to what its input wants.

    A model stored with pickle loads only with ``allow_pickle``, which the caller takes from
    code (a step's declaration, an explicit argument), never from ``stored``.
    """
    kind = stored["kind"]
    if kind == "value":
        text = stored.get("json")
        if text is None:
            text = store.artifacts.read_bytes(stored["blob"], "step value").decode()
        return from_json(text)
    if kind == "dataset":
        version = store.get_dataset_version(project, stored["name"], stored["version"])
        if target in (PortKind.DATASET,):
            return version
        from loopwise.data.datasets import load_dataset  # pyarrow and pandas: first use only

        return load_dataset(version)
    if kind == "model_version":
        registered = store.get_model_version(project, stored["name"], stored["version"])
        if target is PortKind.MODEL_VERSION:
            return registered
        stored = {
            **stored,
            "flavour": registered.flavour,
            "hash": registered.artifact_digest,
            "metadata": registered.metadata,
        }
        kind = "model"
    if kind == "model":
        from loopwise.registry.flavours import get_flavour  # every flavour: first use only

        flavour = get_flavour(stored["flavour"])
        if flavour.uses_pickle and not allow_pickle:
            raise UnsafeModelError(
                "A model this step takes is stored with pickle (flavour 'python'), and loading "
                "it runs the code in it. It was not loaded. If the pipeline's own step made it, "
                "declare @lw.step(allow_pickle=True) on that step or on this one; loading an "
                "output yourself, pass output(..., allow_pickle=True).",
                flavour=flavour.name,
            )
        folder = store.artifacts.get_tree(stored["hash"], scratch / f"model-{stored['hash'][-12:]}")
        return flavour.load(folder, stored.get("metadata") or {}, allow_pickle=allow_pickle)
    if kind == "path":  # a file or folder the pipeline was given, read where it is
        return Path(stored["path"])
    if kind == "artifact":
        folder = store.artifacts.get_tree(
            stored["hash"], scratch / f"artifact-{stored['hash'][-12:]}"
        )
        return folder / stored["file"] if stored.get("file") else folder
    raise InvalidArgumentError(f"Unknown stored output kind {kind!r}.", parameter="kind")
