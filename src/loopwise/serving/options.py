"""What ``loopwise serve`` (and :func:`loopwise.serving.run`) is asked to serve, and how: plain
configuration, checked when the server starts. Cheap to import: the CLI builds its options
from these without loading the data plane."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Compute", "LogDurability", "ServeOptions"]


class Compute(StrEnum):
    """Where models compute."""

    process = "process"
    """One process per model, beside the event loop (best for Python models)."""
    thread = "thread"
    """In the server's process (less memory)."""


class LogDurability(StrEnum):
    """When a logged prediction counts as written."""

    fsync = "fsync"
    """It survives power loss (one fdatasync serves every request waiting at that moment)."""
    write = "write"
    """It survives the server being killed, not an OS crash; no fsync."""


@dataclass(frozen=True)
class ServeOptions:
    """The models and deployments to serve, with batching, memory, cache and logging settings.

    The defaults are those of ``loopwise serve`` (docs/serving.md explains each)."""

    refs: Sequence[str] = ()
    """Models: ``NAME@ALIAS`` (follows the alias), ``NAME/VERSION`` or ``NAME`` (the latest)."""
    deployments: Sequence[str] = ()
    """Deployments, each served under its own name, following its traffic plan."""
    compute: Compute = Compute.process
    slo_ms: float = 1000.0
    """Default deadline per request; one that cannot be met gets 503 at once."""
    max_batch_rows: int = 256
    max_wait_ms: float = 2.0
    max_queue_rows: int = 4096
    max_in_flight: int = 2
    poll_s: float = 5.0
    """How often aliases and deployments are checked for changes."""
    memory_budget_mb: float | None = None
    """Memory for loaded models; the least recently used is evicted beyond it."""
    cache_mb: Mapping[str, float] = field(default_factory=dict)
    """Per served name, MB of memory for a cache of its answers (deterministic models only)."""
    model_threads: int = 1
    log_predictions: bool = True
    log_durability: LogDurability = LogDurability.fsync
    log_window_ms: float = 0.0
    """With fsync: at most one fsync per window, so more requests share each."""
    allow_pickle: bool = False
    """Load models stored with pickle (loading one runs the code in it)."""
    trusted_types: Sequence[str] = ()
    """Type names skops may build in scikit-learn models beyond those trusted already."""
