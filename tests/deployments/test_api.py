"""``lw.deployments``: the SDK verbs over the current store, and the plans they accept."""

from __future__ import annotations

from pathlib import Path

import pytest

import loopwise as lw
from loopwise.errors import ConflictError, InvalidArgumentError
from loopwise.store import TrafficPlan, open_store

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def project(tmp_path: Path) -> str:
    ctx = lw.init(project="sdk", uri=tmp_path / "store")
    for _ in range(4):
        ctx.store.create_model_version(
            "sdk", "employment", flavour="sklearn", artifact_digest=DIGEST
        )
    return "sdk"


def test_the_verbs_over_the_current_project(project: str) -> None:
    created = lw.deployments.create("prod", "employment", 3, reason="first")
    assert (created.model, created.plan, created.revision) == (
        "employment",
        TrafficPlan({3: 100}),
        1,
    )
    canary = lw.deployments.set_plan("prod", {3: 95, 4: 5}, reason="canary", expected_revision=1)
    assert canary.plan == TrafficPlan({3: 95, 4: 5}) and canary.revision == 2
    with pytest.raises(ConflictError):
        lw.deployments.set_plan("prod", {3: 75, 4: 25}, reason="late", expected_revision=1)
    shadowed = lw.deployments.set_plan("prod", TrafficPlan({4: 100}, [3]), reason="promote")
    assert shadowed.plan.shadow == [3]
    back = lw.deployments.rollback("prod", reason="regression")
    assert back.plan == canary.plan and back.revision == 4
    first = lw.deployments.rollback("prod", reason="all the way", to_revision=1)
    assert first.plan == created.plan
    assert [c.kind for c in lw.deployments.history("prod")] == [
        "create",
        "set_plan",
        "set_plan",
        "rollback",
        "rollback",
    ]
    assert lw.deployments.get("prod") == first
    assert lw.deployments.list_deployments() == [first]
    assert lw.deployments.assign(first, "user-1") == 3


def test_an_explicit_store_and_project(project: str, tmp_path: Path) -> None:
    lw.shutdown()
    store = open_store(tmp_path / "store")
    try:
        made = lw.deployments.create(
            "prod", "employment", {1: 50, 2: 50}, store=store, project="sdk"
        )
        assert lw.deployments.get("prod", store=store, project="sdk") == made
        assert lw.deployments.list_deployments(store=store, project="sdk") == [made]
    finally:
        store.close()


def test_plans_the_sdk_refuses(project: str) -> None:
    with pytest.raises(InvalidArgumentError, match="got True"):
        lw.deployments.create("prod", "employment", True)
    with pytest.raises(InvalidArgumentError, match="Expected a traffic plan"):
        lw.deployments.create("prod", "employment", "3=100")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="got 90: add 10 to a version"):
        lw.deployments.create("prod", "employment", {3: 90})
    lw.deployments.create("prod", "employment", 3)
    with pytest.raises(InvalidArgumentError, match="reason"):
        lw.deployments.set_plan("prod", 4, reason="")
    assert lw.deployments.get("prod").revision == 1
