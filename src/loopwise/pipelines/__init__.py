"""Pipelines: steps with declared inputs and outputs, a DAG checked before it runs, a cache
keyed by code, packages and input content, and local or Ray execution (docs/pipelines.md)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from loopwise.pipelines.graph import Graph, Pipeline, output, pipeline
from loopwise.pipelines.ports import Model
from loopwise.pipelines.results import PipelineResult, StepEvent, StepResult, StepState
from loopwise.pipelines.steps import Step, step

if TYPE_CHECKING:
    from loopwise.pipelines.refs import load_pipeline
    from loopwise.pipelines.reproduction import Reproduction, reproduce
    from loopwise.pipelines.runner import run
    from loopwise.pipelines.space import Choice, IntUniform, LogUniform, Uniform
    from loopwise.pipelines.sweeps import SweepResult, sweep

# Defining steps and pipelines needs none of these; running them does. Imported on first use
# (PEP 562) so that the CLI, which registers its pipeline commands on every call, does not load
# pandas for `loopwise --version`.
_LAZY = {
    "load_pipeline": "loopwise.pipelines.refs",
    "Reproduction": "loopwise.pipelines.reproduction",
    "reproduce": "loopwise.pipelines.reproduction",
    "run": "loopwise.pipelines.runner",
    "Choice": "loopwise.pipelines.space",
    "IntUniform": "loopwise.pipelines.space",
    "LogUniform": "loopwise.pipelines.space",
    "SweepResult": "loopwise.pipelines.sweeps",
    "Uniform": "loopwise.pipelines.space",
    "sweep": "loopwise.pipelines.sweeps",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loopwise.pipelines' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Choice",
    "Graph",
    "IntUniform",
    "LogUniform",
    "Model",
    "Pipeline",
    "PipelineResult",
    "Reproduction",
    "Step",
    "StepEvent",
    "StepResult",
    "StepState",
    "SweepResult",
    "Uniform",
    "load_pipeline",
    "output",
    "pipeline",
    "reproduce",
    "run",
    "step",
    "sweep",
]
