"""The state's JSON is a stored format (each decision keeps it): states recorded by the
controller before ``Rollout`` and ``PendingRetrain`` were typed read back and write out
unchanged, so a controller resumes from decisions recorded by the old code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loopwise.autopilot.state import PendingRetrain, Rollout, State

RECORDED: dict[str, dict[str, Any]] = json.loads(
    Path(__file__).with_name("recorded_states.json").read_text()
)
"""States as the untyped controller recorded them (tests/autopilot/world.py scenarios)."""


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_a_recorded_state_round_trips(name: str) -> None:
    recorded = RECORDED[name]
    written = State.from_json(recorded).to_json()
    kept = {k: v for k, v in written.items() if k in recorded}
    assert kept == recorded
    assert json.dumps(kept) == json.dumps(recorded)  # the keys in the same order, too
    # Keys added since (issue 18's checks) take their defaults and read back unchanged.
    added = {k: v for k, v in written.items() if k not in recorded}
    assert added == {k: v for k, v in State().to_json().items() if k in added}
    assert State.from_json(written).to_json() == written


def test_the_rollout_and_the_pending_retrain_read_back_typed() -> None:
    state = State.from_json(RECORDED["rollout_with_counts"])
    assert state.rollout == Rollout(
        candidate=2,
        step=0,
        started_ms=1700265600000,
        gate_metric=0.9159663865546218,
        gate_rows=119,
        expected_shift=9.389525396780977,
        counts_at_start={"1": [0, 480], "2": [2, 120]},
        since_ms=1700179632721,
        rows=597,
        refresh=False,
    )
    pending = State.from_json(RECORDED["refresh_retrain"]).pending_retrain
    assert pending == PendingRetrain(
        "synth-prod-retrain/2", "synth-prod-retrain-holdout/2", 1700179632721, 1797, True
    )


def test_keys_earlier_versions_did_not_write_take_their_defaults() -> None:
    """Rollouts recorded before the error-rate guardrail and the refresh lack those keys."""
    state = State.from_json(
        {
            "phase": "rollout",
            "production": 1,
            "rollout": {"candidate": 2, "step": 1, "started_ms": 5, "gate_metric": 0.9,
                        "gate_rows": 100, "expected_shift": 0.1},
            "pending_retrain": {"train": "x/1", "holdout": "x/2", "since_ms": 0, "rows": 10},
        }
    )  # fmt: skip
    assert state.rollout == Rollout(2, 1, 5, 0.9, 100, 0.1)
    assert state.rollout.counts_at_start is None and state.rollout.since_ms is None
    assert state.pending_retrain == PendingRetrain("x/1", "x/2", 0, 10, refresh=False)
    assert State.from_json(state.to_json()) == state
