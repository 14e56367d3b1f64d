"""The autopilot's state for one deployment: what it believes, kept with every decision.

The state is a JSON object stored with each decision (``Store.record_autopilot_decision``),
so the latest decision is the controller's whole memory: a controller killed at any point and
started again reads it back and carries on. Side effects are announced before they are made:
a decision that changes the traffic plan records the plan and the revision it will have
(``expect``), and every tick first makes the deployment agree with it (``controller``).
The JSON shape is a stored format: ``to_json``/``from_json`` read what earlier versions wrote.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Self

__all__ = ["Counts", "PendingRetrain", "Phase", "Rollout", "State"]

Phase = str  # "watching" | "rollout" | "paused"

Counts = dict[str, list[int]]
"""Per version (as text): ``[failed requests (HTTP 5xx), all requests]`` an inference server
had answered (``rollout.serving_counts``)."""


@dataclass(frozen=True)
class _Stored:
    """A frozen part of the state stored as a JSON object of its fields."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Read a stored part; keys that earlier versions did not write take their defaults."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Rollout(_Stored):
    """A candidate taking traffic step by step (stored as ``State.rollout``)."""

    candidate: int
    step: int
    """The index into the rollout's steps (``rollout.step_plan``)."""
    started_ms: int
    """When this step began: it is judged on the traffic since."""
    gate_metric: float
    """The candidate's metric on the gate's held-out rows: production's baseline if promoted."""
    gate_rows: int = 0
    expected_shift: float | None = None
    """The prediction shift (PSI) the gate measured between the models on held-out rows."""
    counts_at_start: Counts | None = None
    """The inference server's request counters when the step began (None: not read)."""
    since_ms: int | None = None
    """Where the change the candidate was trained after began (None: no change behind it)."""
    rows: int = 0
    """The labelled rows it was trained on."""
    refresh: bool = False
    """A retrain once more after a change (``retrain.refresh_factor``), not a repair."""


@dataclass(frozen=True)
class PendingRetrain(_Stored):
    """A retrain announced but not yet judged (stored as ``State.pending_retrain``): the
    datasets it trains and is gated on, so that a controller killed meanwhile finishes it."""

    train: str
    """The training data's dataset ref (``name/version``)."""
    holdout: str
    """The held-out latest rows' dataset ref, for the gates."""
    since_ms: int | None = None
    """Where the change behind the retrain began (None: none estimated)."""
    rows: int = 0
    refresh: bool = False
    """A retrain once more after a change (``retrain.refresh_factor``), not a repair."""


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
    """The labelled rows behind ``baseline``: the gate's held-out rows, or the first check's,
    then the version's first checks without a drop until ``BASELINE_ROWS`` (after which the
    baseline holds: it never follows the model's own decay)."""
    last_check_ms: int | None = None
    """When the last check was taken; after a promotion, the promotion (the first check of a
    new version comes one whole ``monitor.window`` after it)."""
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
    """Candidates in a row that failed their gates or were rolled back within the current
    episode of trouble: a promotion, a person resuming, or a check that judges production
    healthy on its labels (no drop) ends the episode and sets it back to 0."""
    rollout: Rollout | None = None
    """The rollout in progress (phase ``rollout``)."""
    pending_retrain: PendingRetrain | None = None
    """A retrain announced but not yet judged."""
    quarantine: list[list[int]] = field(default_factory=list)
    """Time ranges ``[start, end)`` whose traffic failed validation: never trained on."""
    expect: dict[str, Any] | None = None
    """The plan (JSON) and revision the deployment must be at after the last change."""
    alias: int | None = None
    """The version the policy's ``rollout.alias`` must point at (None: leave it)."""
    paused_reason: str = ""
    drop_evidence: list[list[float]] = field(default_factory=list)
    """The latest checks in a row that looked worse than the allowed drop, pooled as evidence
    of one (``decide.drop_test``): ``[start_ms, end_ms, rows, fall, se]`` each, at most
    ``DROP_CHECKS``; a check within the allowed drop, or a new production version, clears it."""
    judged_until_ms: int | None = None
    """Just after the last labelled row of production a check judged was served: the next
    check judges the labelled rows served since (labels that come late are judged when they
    come, no row twice; ``decide.labelled_since_ms``). None: those of its own window."""
    realised_checks: int = 0
    """Checks that judged the production version on enough labels since it took over. Until
    one has, a check without enough labels is "not measurable yet": estimated performance
    (``retrain.on: estimated_performance``) stands in only for a version already judged on
    labels, never for one whose labels have not come in."""

    def to_json(self) -> dict[str, Any]:
        # asdict copies deeply, and writes a Rollout or PendingRetrain as its to_dict does.
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if known.get("rollout") is not None:
            known["rollout"] = Rollout.from_dict(known["rollout"])
        if known.get("pending_retrain") is not None:
            known["pending_retrain"] = PendingRetrain.from_dict(known["pending_retrain"])
        return cls(**known)

    def in_quarantine(self, start_ms: int, end_ms: int) -> bool:
        return any(a < end_ms and start_ms < b for a, b in self.quarantine)

    def retrains_since(self, since_ms: int) -> int:
        return sum(1 for t in self.retrains_ms if t >= since_ms)
