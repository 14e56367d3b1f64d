"""A controller killed at each stage and started again finishes what it announced and never
does anything twice: the decisions, the plan history and the registered versions come out
the same as an uninterrupted run's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import loopwise as lw
from loopwise.autopilot import controller
from loopwise.monitoring import list_alerts

from .world import DEPLOYMENT, World, policy_text


class Killed(BaseException):
    """Stands for the process dying: nothing catches it on the way out."""


def _outcome(world: World) -> dict[str, Any]:
    return {
        "kinds": world.kinds(),
        "plans": [c.plan.shares for c in lw.deployments.history(DEPLOYMENT)],
        "versions": [v.version for v in lw.models.versions("synthetic")],
        "alerts": [(a.fingerprint, a.occurrences) for a in list_alerts(DEPLOYMENT, status=None)],
        "served": world.served,
    }


def _run(tmp_path: Path, name: str, world: World, policy: str, windows: range,
         kill_at: str | None, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], int]:  # fmt: skip
    kills = 0
    original = controller.checkpoint

    def checkpoint(stage: str) -> None:
        nonlocal kills
        if stage == kill_at and kills == 0:
            kills += 1
            raise Killed(stage)
        original(stage)

    monkeypatch.setattr(controller, "checkpoint", checkpoint)
    real_run_once = lw.autopilot.run_once

    def run_once(deployment: str, **kwargs: Any) -> Any:
        try:
            return real_run_once(deployment, **kwargs)
        except Killed:
            # The process died here; a new one starts at the same moment, from the store.
            lw.shutdown()
            lw.init(project="auto", uri=tmp_path / name)
            return real_run_once(deployment, **kwargs)

    monkeypatch.setattr(lw.autopilot, "run_once", run_once)
    lw.init(project="auto", uri=tmp_path / name)
    try:
        world.setup(policy)
        world.play(windows)
        return _outcome(world), kills
    finally:
        monkeypatch.setattr(lw.autopilot, "run_once", real_run_once)
        lw.shutdown()


SCENARIOS: dict[str, tuple[dict[str, Any], dict[str, Any], range]] = {
    # stage: (world arguments, policy overrides, windows)
    "retrain:before-pipeline": ({"change": 2}, {}, range(0, 4)),
    "retrain:after-pipeline": ({"change": 2}, {}, range(0, 4)),
    "rollout:before-plan": ({"change": 2}, {}, range(0, 4)),
    "promote:before-plan": ({"change": 2}, {}, range(0, 4)),
    "rollback:before-plan": ({"change": 2}, {"max_latency_ms": 0.5}, range(0, 4)),
    "escalate:before-alert": ({"change": 100, "bug": 1}, {}, range(0, 3)),
}


@pytest.fixture
def no_context() -> Iterator[None]:
    yield
    lw.shutdown()


@pytest.mark.parametrize("stage", sorted(SCENARIOS))
@pytest.mark.slow(seconds=50)  # a whole scenario per stage: seven of them, 7-9 s each
def test_killed_at_each_stage_resumes_without_doing_anything_twice(
    stage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_context: None
) -> None:
    arguments, rollout, windows = SCENARIOS[stage]
    overrides: dict[str, Any] = {}
    if rollout:
        overrides["rollout"] = {"strategy": "canary", "steps": [20, 100], "min_samples": 60,
                                **rollout}  # fmt: skip
    policy = policy_text(**overrides)
    expected, _ = _run(tmp_path, "calm", World(**arguments), policy, windows, None, monkeypatch)
    found, kills = _run(tmp_path, "killed", World(**arguments), policy, windows, stage, monkeypatch)
    assert kills == 1, f"the scenario never reached {stage}: {expected['kinds']}"
    assert found == expected
    kind = stage.split(":")[0]
    assert kind in expected["kinds"]
