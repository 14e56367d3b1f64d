"""What a pipeline run answers: each step's state, run, timing and outputs."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from loopwise.errors import InvalidArgumentError
from loopwise.pipelines.materialise import materialise
from loopwise.pipelines.ports import PortKind

__all__ = ["PipelineResult", "StepEvent", "StepResult", "StepState"]


class StepState(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    CACHED = "cached"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Not run because a step it reads from failed."""

    @property
    def done(self) -> bool:
        return self in (StepState.FINISHED, StepState.CACHED)


@dataclass(frozen=True)
class StepEvent:
    """A step changed state; what progress views and callbacks receive."""

    node: str
    label: str
    state: StepState
    run_id: str | None = None
    duration_s: float | None = None
    error: str | None = None


@dataclass
class StepResult:
    node: str
    state: StepState
    run_id: str | None = None
    """The run that produced the outputs: for a cached step, the earlier run reused."""
    duration_s: float = 0.0
    record: dict[str, Any] | None = None
    error: str | None = None
    traceback: str | None = None

    @property
    def outputs(self) -> dict[str, Any]:
        """Each output as stored: kind, content hash and where it is."""
        return dict((self.record or {}).get("outputs", {}))

    def output(self, port: str | None = None, *, allow_pickle: bool = False) -> Any:
        """Load one output into this process (a DataFrame, a model, a path, a value).

        A model stored with pickle loads only with ``allow_pickle=True`` (loading it runs code).
        """
        # The context opens the store (SQLAlchemy, httpx): first use only, not on import.
        from loopwise.context import current

        outputs = self.outputs
        if not outputs:
            raise InvalidArgumentError(
                f"Step {self.node!r} has no outputs to load (it is {self.state.value}).",
                parameter="node",
            )
        if port is None:
            if len(outputs) > 1:
                raise InvalidArgumentError(
                    f"Step {self.node!r} has outputs {sorted(outputs)}; name one.",
                    parameter="port",
                )
            port = next(iter(outputs))
        if port not in outputs:
            raise InvalidArgumentError(
                f"Step {self.node!r} has no output {port!r}. Its outputs: {sorted(outputs)}.",
                parameter="port",
            )
        stored = outputs[port]
        ctx = current()
        # Model and artifact files are copied out of the content-addressed store to a folder
        # that outlives this call (the caller reads them after it returns).
        scratch = Path(tempfile.mkdtemp(prefix="loopwise-output-"))
        return materialise(
            stored,
            PortKind(stored.get("declared", "any")),
            ctx.store,
            ctx.project,
            scratch,
            allow_pickle,
        )


@dataclass
class PipelineResult:
    pipeline: str
    run_id: str
    params: dict[str, Any]
    status: str
    steps: dict[str, StepResult] = field(default_factory=dict)

    def __getitem__(self, node: str) -> StepResult:
        try:
            return self.steps[node]
        except KeyError:
            raise InvalidArgumentError(
                f"Pipeline {self.pipeline!r} has no step {node!r}. Steps: {list(self.steps)}.",
                parameter="node",
            ) from None

    def output(self, node: str, port: str | None = None, *, allow_pickle: bool = False) -> Any:
        return self[node].output(port, allow_pickle=allow_pickle)

    def _in(self, *states: StepState) -> list[str]:
        return [n for n, s in self.steps.items() if s.state in states]

    @property
    def executed(self) -> list[str]:
        return self._in(StepState.FINISHED, StepState.FAILED)

    @property
    def cached(self) -> list[str]:
        return self._in(StepState.CACHED)

    @property
    def failed(self) -> list[str]:
        return self._in(StepState.FAILED)

    @property
    def skipped(self) -> list[str]:
        return self._in(StepState.SKIPPED)
