"""Pipelines: steps with declared inputs and outputs, a DAG checked before it runs, a cache
keyed by code, packages and input content, and local or Ray execution (docs/pipelines.md)."""

from loopwise.pipelines.graph import Graph, Pipeline, output, pipeline
from loopwise.pipelines.ports import Model
from loopwise.pipelines.refs import load_pipeline
from loopwise.pipelines.reproduce import Reproduction, reproduce
from loopwise.pipelines.results import PipelineResult, StepEvent, StepResult, StepState
from loopwise.pipelines.runner import run
from loopwise.pipelines.steps import Step, step
from loopwise.pipelines.sweeps import (
    Choice,
    IntUniform,
    LogUniform,
    SweepResult,
    Uniform,
    sweep,
)

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
