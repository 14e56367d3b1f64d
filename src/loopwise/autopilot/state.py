"""The autopilot's state for one deployment: what it believes, kept with every decision.

The state is a JSON object stored with each decision (``Store.record_autopilot_decision``),
so the latest decision is the controller's whole memory: a controller killed at any point and
started again reads it back and carries on. Side effects are announced before they are made:
a decision that changes the traffic plan records the plan and the revision it will have
(``expect``), and every tick first makes the deployment agree with it (``controller``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Phase", "State"]

Phase = str  # "watching" | "rollout" | "paused"


@dataclass
class State:
    """What the controller knows between ticks (see the module docstring)."""

    phase: Phase = "watching"
    production: int | None = None
    """The version that takes all the traffic outside a rollout."""
    metric: str | None = None
    """The metric protected (the policy's, or inferred from the outcomes at the first check)."""
    baseline: float | None = None
    """What production is expected to score; a drop from it triggers retraining."""
    baseline_source: str = ""
    baseline_rows: int = 0
    """The labelled rows behind ``baseline``: it is the running mean over checks without a
    drop (at most ``BASELINE_ROWS`` of the latest rows weigh in)."""
    last_check_ms: int | None = None
    drop_since_ms: int | None = None
    """The estimated start of the current drop (None: no drop now)."""
    awaiting_rows: bool = False
    """A retrain waits for ``retrain.min_rows`` labelled rows since the drop: each tick looks."""
    retrains_ms: list[int] = field(default_factory=list)
    """When each retrain started (the last day's, for the budget and the cooldown)."""
    regime_start_ms: int | None = None
    """Where the change behind the production model began (None: no refresh pending)."""
    regime_rows: int = 0
    """Labelled rows since that change the production model was trained on."""
    failed_candidates: int = 0
    """Candidates in a row that failed their gates or were rolled back."""
    rollout: dict[str, Any] | None = None
    """candidate, step (index into the steps), started_ms, shadow (bool), gate metric."""
    pending_retrain: dict[str, Any] | None = None
    """A retrain announced but not yet judged: its datasets and window."""
    quarantine: list[list[int]] = field(default_factory=list)
    """Time ranges ``[start, end)`` whose traffic failed validation: never trained on."""
    expect: dict[str, Any] | None = None
    """The plan (JSON) and revision the deployment must be at after the last change."""
    alias: int | None = None
    """The version the policy's ``rollout.alias`` must point at (None: leave it)."""
    paused_reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def in_quarantine(self, start_ms: int, end_ms: int) -> bool:
        return any(a < end_ms and start_ms < b for a, b in self.quarantine)

    def retrains_since(self, since_ms: int) -> int:
        return sum(1 for t in self.retrains_ms if t >= since_ms)
