"""Where a pipeline lives, written so another process can load it: ``file.py:name`` or
``package.module:name``."""

from __future__ import annotations

import importlib
import inspect
import os
from pathlib import Path

from loopwise.errors import InvalidArgumentError, NotFoundError
from loopwise.pipelines.graph import Pipeline
from loopwise.pipelines.loading import import_module_at

__all__ = ["load_pipeline", "pipeline_file", "pipeline_ref"]


def pipeline_file(pipeline: Pipeline) -> str | None:
    """The absolute path of the file that defines ``pipeline`` (None if it has none)."""
    try:
        return os.path.abspath(inspect.getfile(pipeline.fn))
    except TypeError:
        return None


def pipeline_ref(pipeline: Pipeline) -> str:
    """``/abs/path/file.py:name``: what ``load_pipeline`` (and ``loopwise reproduce``) reads."""
    file = pipeline_file(pipeline)
    if file is None:
        return f"{pipeline.fn.__module__}:{pipeline.fn.__qualname__}"
    return f"{file}:{pipeline.fn.__qualname__}"


def load_pipeline(ref: str) -> Pipeline:
    """The ``Pipeline`` at ``path/to/file.py:name`` or ``package.module:name``."""
    if not isinstance(ref, str) or ":" not in ref:
        raise InvalidArgumentError(
            f"Expected a pipeline reference like 'train.py:training' or 'pkg.flows:training', "
            f"got {ref!r}.",
            parameter="pipeline",
        )
    location, _, name = ref.rpartition(":")
    path = Path(location)
    if location.endswith(".py") or path.exists():
        if not path.is_file():
            raise NotFoundError(
                f"No Python file at {location!r} (from {ref!r}). Check the path; it is relative "
                f"to {os.getcwd()!r}.",
                kind="file",
            )
        module = import_module_at(f"loopwise_pipeline_{path.stem}", str(path.resolve()))
    else:
        try:
            module = importlib.import_module(location)
        except ImportError as exc:
            raise NotFoundError(
                f"Cannot import module {location!r} (from {ref!r}): {exc}. Give a file path "
                "(train.py:pipeline) or a module importable from the current folder.",
                kind="module",
            ) from None
    target: object = module
    for part in name.split("."):
        target = getattr(target, part, None)
        if target is None:
            found = sorted(k for k, v in vars(module).items() if isinstance(v, Pipeline))
            raise NotFoundError(
                f"{location!r} has no {name!r}. Pipelines defined there: {found or 'none'}.",
                kind="pipeline",
            )
    if not isinstance(target, Pipeline):
        raise InvalidArgumentError(
            f"{ref!r} is a {type(target).__name__}, not a pipeline. Decorate the function with "
            "@lw.pipeline.",
            parameter="pipeline",
        )
    return target
