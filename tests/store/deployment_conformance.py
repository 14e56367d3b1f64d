"""Deployments and traffic plans on every ``Store`` backend: the same behaviour, the same refusals.

A backend's test class mixes ``DeploymentConformance`` in beside ``StoreConformance`` and provides
the same ``store`` fixture (a fresh, empty store) plus ``reopen``: a callable that opens the same
store again, as a new instance with nothing cached.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from loopwise.errors import ConflictError, InvalidArgumentError, LoopwiseError, NotFoundError
from loopwise.store import Deployment, Store, TrafficPlan

DIGEST = "sha256:" + "ab" * 32
A = TrafficPlan({1: 100})
B = TrafficPlan({1: 95, 2: 5})
C = TrafficPlan({1: 75, 2: 25})
D = TrafficPlan({2: 100}, shadow=[3])


@contextmanager
def reopener(open_again: Callable[[], Store]) -> Iterator[Callable[[], Store]]:
    """A ``reopen`` fixture's body: opens on demand, closes whatever it opened."""
    opened: list[Store] = []

    def again() -> Store:
        opened.append(open_again())
        return opened[-1]

    try:
        yield again
    finally:
        for store in reversed(opened):
            store.close()


def _setup(store: Store, project: str = "proj", versions: int = 5) -> str:
    store.get_or_create_project(project)
    for _ in range(versions):
        store.create_model_version(project, "employment", flavour="sklearn", artifact_digest=DIGEST)
    return project


def _deploy(store: Store, name: str = "prod", plan: TrafficPlan = A) -> Deployment:
    return store.create_deployment("proj", name, "employment", plan, "first rollout")


def _refused(
    error: type[LoopwiseError], call: Callable[[], Any], match: str, parameter: str
) -> None:
    with pytest.raises(error, match=match) as info:
        call()
    assert info.value.details.get("parameter") == parameter, info.value.details


BAD_PLANS: list[tuple[Any, str, str]] = [
    ({1: 90}, r"sum to exactly 100, got 90: add 10 to a version", "plan.shares"),
    ({1: 60, 2: 50}, r"got 110: take 10 from a version", "plan.shares"),
    ({1: 100, 2: 0}, r"got 0 for version 2: leave the version out", "plan.shares"),
    ({1: 110, 2: -10}, r"percentage from 1 to 100, got 110", "plan.shares"),
    ({1: 50.5, 2: 49.5}, r"whole percentages", "plan.shares"),
    ({0: 100}, r"name model versions by number", "plan.shares"),
    ({True: 100}, r"name model versions by number", "plan.shares"),
    ({"1": 50, "01": 50}, r"version 1 twice", "plan.shares"),
    ({}, r"at least one version", "plan.shares"),
    (
        {v: 9 for v in range(1, 11)} | {11: 10},
        r"at most 10 versions \(shares and shadow\), got 11",
        "plan",
    ),
    (TrafficPlan({v: 10 for v in range(1, 11)}, shadow=[11]), r"at most 10 versions", "plan"),
    (
        TrafficPlan({1: 100}, shadow=[1]),
        r"in both plan.shares \(100%\) and plan.shadow",
        "plan.shadow",
    ),
    (TrafficPlan({1: 100}, shadow=[2, 2]), r"version 2 twice", "plan.shadow"),
    (TrafficPlan({1: 100}, shadow=[0]), r"name model versions by number", "plan.shadow"),
    (TrafficPlan({1: 100}, shadow="2"), r"plan.shadow as a list", "plan.shadow"),  # type: ignore[arg-type]
    ("1=100", r"Expected a traffic plan", "plan"),
]


class DeploymentConformance:
    @pytest.fixture
    def reopen(self) -> Callable[[], Store]:
        raise NotImplementedError("A backend's test class must override the `reopen` fixture.")

    # -- create, get, list ------------------------------------------------------------------------
    def test_deployment_is_created_read_and_listed(self, store: Store) -> None:
        _setup(store)
        assert store.list_deployments("proj") == []
        before = int(time.time() * 1000)
        created = _deploy(store, "prod", TrafficPlan({2: 5, 1: 95}))
        now = int(time.time() * 1000)
        assert (created.project, created.name, created.model) == ("proj", "prod", "employment")
        assert created.plan == B and list(created.plan.shares) == [1, 2]  # ascending versions
        assert created.revision == 1
        assert before <= created.created_ms == created.updated_ms <= now
        assert store.get_deployment("proj", "prod") == created
        other = store.create_deployment("proj", "canary", "employment", {3: 100})  # type: ignore[arg-type]
        assert other.plan == TrafficPlan({3: 100}) and other.plan.shadow == []
        assert store.list_deployments("proj") == [other, created]  # by name

    def test_deployment_plan_keeps_shadow_versions_in_order(self, store: Store) -> None:
        _setup(store)
        created = _deploy(store, plan=TrafficPlan({2: 100}, shadow=[5, 3]))
        assert created.plan.shadow == [3, 5]
        assert created.plan.versions == [2, 3, 5]
        assert store.get_deployment("proj", "prod").plan == TrafficPlan({2: 100}, shadow=[3, 5])

    def test_deployment_names_are_unique_per_project(self, store: Store) -> None:
        _setup(store)
        _setup(store, "other", versions=1)
        _deploy(store)
        with pytest.raises(ConflictError, match="already has a deployment named 'prod'"):
            store.create_deployment("proj", "prod", "employment", C, "again")
        assert store.get_deployment("proj", "prod").plan == A
        theirs = store.create_deployment("other", "prod", "employment", A)
        store.set_deployment_plan("proj", "prod", C, "canary")
        assert store.get_deployment("other", "prod") == theirs
        assert [d.name for d in store.list_deployments("other")] == ["prod"]
        # Versions are those of the project's own model: "other" has only version 1.
        with pytest.raises(NotFoundError, match="version 2"):
            store.set_deployment_plan("other", "prod", C, "canary")

    # -- changes --------------------------------------------------------------------------------
    def test_setting_a_deployment_plan_makes_a_new_revision(self, store: Store) -> None:
        _setup(store)
        created = _deploy(store)
        changed = store.set_deployment_plan("proj", "prod", B, "canary 5%")
        assert changed.revision == 2 and changed.plan == B
        assert changed.created_ms == created.created_ms <= changed.updated_ms
        assert store.get_deployment("proj", "prod") == changed
        # The plan in force again: nothing changes, no revision, no history entry.
        same = store.set_deployment_plan("proj", "prod", TrafficPlan({2: 5, 1: 95}), "again")
        assert same == changed
        assert [c.revision for c in store.deployment_history("proj", "prod")] == [1, 2]

    def test_deployment_history_is_oldest_first(self, store: Store) -> None:
        _setup(store)
        _deploy(store)
        for plan, reason in [(B, "canary 5%"), (C, "canary 25%"), (D, "promote 2, shadow 3")]:
            store.set_deployment_plan("proj", "prod", plan, reason)
        store.rollback_deployment("proj", "prod", "latency SLO breached")
        history = store.deployment_history("proj", "prod")
        assert [(c.revision, c.kind, c.plan, c.restored_revision) for c in history] == [
            (1, "create", A, None),
            (2, "set_plan", B, None),
            (3, "set_plan", C, None),
            (4, "set_plan", D, None),
            (5, "rollback", C, 3),
        ]
        assert [c.reason for c in history] == [
            "first rollout",
            "canary 5%",
            "canary 25%",
            "promote 2, shadow 3",
            "latency SLO breached",
        ]
        assert all(c.actor for c in history)
        assert [c.time_ms for c in history] == sorted(c.time_ms for c in history)
        assert store.get_deployment("proj", "prod").updated_ms == history[-1].time_ms

    def test_deployment_rollback_twice_goes_two_plans_back(self, store: Store) -> None:
        _setup(store)
        _deploy(store)
        store.set_deployment_plan("proj", "prod", B, "canary 5%")
        store.set_deployment_plan("proj", "prod", C, "canary 25%")
        first = store.rollback_deployment("proj", "prod", "errors up")
        assert (first.revision, first.plan) == (4, B)
        second = store.rollback_deployment("proj", "prod", "still bad")
        assert (second.revision, second.plan) == (5, A)  # not forward again to C
        with pytest.raises(ConflictError, match="nothing earlier to roll back to"):
            store.rollback_deployment("proj", "prod", "once more")
        history = store.deployment_history("proj", "prod")
        assert [(c.kind, c.restored_revision) for c in history[3:]] == [
            ("rollback", 2),
            ("rollback", 1),
        ]
        assert store.get_deployment("proj", "prod").revision == 5

    def test_deployment_rollback_after_a_new_plan_undoes_that_plan(self, store: Store) -> None:
        _setup(store)
        _deploy(store)
        store.set_deployment_plan("proj", "prod", B, "canary")
        store.rollback_deployment("proj", "prod", "bad canary")  # 3: A again
        store.set_deployment_plan("proj", "prod", D, "another candidate")  # 4
        undone = store.rollback_deployment("proj", "prod", "bad too")
        assert (undone.revision, undone.plan) == (5, A)
        assert store.deployment_history("proj", "prod")[-1].restored_revision == 3
        with pytest.raises(ConflictError, match="the one it was created with"):
            store.rollback_deployment("proj", "prod", "A was first set at creation")

    def test_deployment_rollback_to_a_named_revision(self, store: Store) -> None:
        _setup(store)
        _deploy(store)
        store.set_deployment_plan("proj", "prod", B, "canary 5%")
        store.set_deployment_plan("proj", "prod", C, "canary 25%")
        back = store.rollback_deployment("proj", "prod", "to the start", to_revision=1)
        assert (back.revision, back.plan) == (4, A)
        # Restoring the plan in force changes nothing.
        assert store.rollback_deployment("proj", "prod", "again", to_revision=1) == back
        assert store.rollback_deployment("proj", "prod", "itself", to_revision=4) == back
        forward = store.rollback_deployment("proj", "prod", "25% was fine", to_revision=3)
        assert (forward.revision, forward.plan) == (5, C)
        with pytest.raises(NotFoundError, match="no revision 9; its revisions are 1 to 5"):
            store.rollback_deployment("proj", "prod", "nowhere", to_revision=9)
        with pytest.raises(InvalidArgumentError):
            store.rollback_deployment("proj", "prod", "nowhere", to_revision=0)
        assert store.get_deployment("proj", "prod").revision == 5

    # -- optimistic concurrency -----------------------------------------------------------------
    def test_deployment_change_with_a_stale_revision_is_a_conflict(self, store: Store) -> None:
        _setup(store)
        _deploy(store)
        assert store.set_deployment_plan("proj", "prod", B, "5%", expected_revision=1).revision == 2
        with pytest.raises(ConflictError, match="at revision 2, not the expected 1") as info:
            store.set_deployment_plan("proj", "prod", C, "25%", expected_revision=1)
        assert info.value.details["revision"] == 2
        # Even the plan in force: the caller decided on stale facts and must look again.
        with pytest.raises(ConflictError):
            store.set_deployment_plan("proj", "prod", B, "5%", expected_revision=1)
        with pytest.raises(ConflictError, match="not the expected 1"):
            store.rollback_deployment("proj", "prod", "errors", expected_revision=1)
        assert store.get_deployment("proj", "prod").plan == B
        assert len(store.deployment_history("proj", "prod")) == 2
        back = store.rollback_deployment("proj", "prod", "errors", expected_revision=2)
        assert (back.revision, back.plan) == (3, A)

    def test_concurrent_deployment_changes_from_one_revision_make_one(self, store: Store) -> None:
        _setup(store)
        _deploy(store)
        plans = [TrafficPlan({1: 100 - share, 2: share}) for share in range(10, 90, 10)]
        outcomes: list[object] = [None] * len(plans)
        start = threading.Barrier(len(plans))

        def change(i: int) -> None:
            start.wait()
            try:
                outcomes[i] = store.set_deployment_plan(
                    "proj", "prod", plans[i], f"writer {i}", expected_revision=1
                )
            except ConflictError as exc:
                outcomes[i] = exc

        threads = [threading.Thread(target=change, args=(i,)) for i in range(len(plans))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        won = [o for o in outcomes if isinstance(o, Deployment)]
        assert len(won) == 1 and won[0].revision == 2, outcomes
        assert sum(isinstance(o, ConflictError) for o in outcomes) == len(plans) - 1
        assert store.get_deployment("proj", "prod") == won[0]
        assert [c.revision for c in store.deployment_history("proj", "prod")] == [1, 2]

    def test_concurrent_creates_of_one_deployment_make_one(self, store: Store) -> None:
        _setup(store)
        outcomes: list[object] = [None] * 6
        start = threading.Barrier(len(outcomes))

        def create(i: int) -> None:
            start.wait()
            try:
                outcomes[i] = store.create_deployment(
                    "proj", "prod", "employment", TrafficPlan({i % 5 + 1: 100}), f"writer {i}"
                )
            except ConflictError as exc:
                outcomes[i] = exc

        threads = [threading.Thread(target=create, args=(i,)) for i in range(len(outcomes))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        made = [o for o in outcomes if isinstance(o, Deployment)]
        assert len(made) == 1, outcomes
        assert all(isinstance(o, ConflictError) for o in outcomes if o is not made[0])
        assert store.list_deployments("proj") == made
        assert len(store.deployment_history("proj", "prod")) == 1

    # -- bad input ------------------------------------------------------------------------------
    @pytest.mark.parametrize(("plan", "match", "parameter"), BAD_PLANS)
    def test_bad_deployment_plans_are_refused(
        self, store: Store, plan: Any, match: str, parameter: str
    ) -> None:
        _setup(store)
        _refused(
            InvalidArgumentError,
            lambda: store.create_deployment("proj", "new", "employment", plan),
            match,
            parameter,
        )
        assert store.list_deployments("proj") == []
        _deploy(store)
        _refused(
            InvalidArgumentError,
            lambda: store.set_deployment_plan("proj", "prod", plan, "bad"),
            match,
            parameter,
        )
        assert store.get_deployment("proj", "prod").revision == 1

    def test_deployment_plan_versions_must_be_registered(self, store: Store) -> None:
        _setup(store, versions=3)
        missing = TrafficPlan({1: 95, 7: 5})
        _refused(
            NotFoundError,
            lambda: store.create_deployment("proj", "prod", "employment", missing),
            r"version 7; it has versions \[1, 2, 3\]",
            "plan.shares",
        )
        shadow = TrafficPlan({1: 100}, shadow=[8])
        _refused(
            NotFoundError,
            lambda: store.create_deployment("proj", "prod", "employment", shadow),
            "version 8",
            "plan.shadow",
        )
        assert store.list_deployments("proj") == []
        _deploy(store)
        with pytest.raises(NotFoundError, match="version 7"):
            store.set_deployment_plan("proj", "prod", missing, "typo")
        with pytest.raises(NotFoundError, match="No model named 'churn'"):
            store.create_deployment("proj", "other", "churn", A)
        with pytest.raises(NotFoundError, match="No project named 'nope'"):
            store.create_deployment("nope", "other", "employment", A)
        assert store.get_deployment("proj", "prod").revision == 1

    def test_bad_deployment_arguments_are_refused(self, store: Store) -> None:
        _setup(store)
        with pytest.raises(InvalidArgumentError, match="deployment name"):
            store.create_deployment("proj", "has space", "employment", A)
        with pytest.raises(InvalidArgumentError, match="model name"):
            store.create_deployment("proj", "prod", "a/b", A)
        _deploy(store)
        calls: list[tuple[Callable[[], Any], str, str]] = [
            (lambda: store.set_deployment_plan("proj", "prod", B, ""), "a reason", "reason"),
            (lambda: store.set_deployment_plan("proj", "prod", B, "  "), "a reason", "reason"),
            (lambda: store.rollback_deployment("proj", "prod", ""), "a reason", "reason"),
            (lambda: store.set_deployment_plan("proj", "prod", B, "x" * 2001), "2000", "reason"),
            (lambda: store.set_deployment_plan("proj", "prod", B, "nul\x00"), "NUL", "reason"),
            (
                lambda: store.set_deployment_plan("proj", "prod", B, "r", expected_revision=0),
                "expected_revision",
                "expected_revision",
            ),
            (
                lambda: store.set_deployment_plan("proj", "prod", B, "r", True),
                "expected_revision",
                "expected_revision",
            ),
            (
                lambda: store.rollback_deployment("proj", "prod", "r", to_revision="1"),  # type: ignore[arg-type]
                "to_revision",
                "to_revision",
            ),
        ]
        for call, match, parameter in calls:
            _refused(InvalidArgumentError, call, match, parameter)
        assert store.get_deployment("proj", "prod").revision == 1

    def test_unknown_deployments_are_not_found(self, store: Store) -> None:
        _setup(store)
        _deploy(store, "prod")
        lookups: list[Callable[[], object]] = [
            lambda: store.get_deployment("proj", "prdo"),
            lambda: store.deployment_history("proj", "prdo"),
            lambda: store.set_deployment_plan("proj", "prdo", B, "r"),
            lambda: store.rollback_deployment("proj", "prdo", "r"),
        ]
        for call in lookups:
            with pytest.raises(NotFoundError, match="No deployment named 'prdo'.*'prod'"):
                call()
        with pytest.raises(NotFoundError, match="project"):
            store.list_deployments("nope")

    # -- audit and persistence --------------------------------------------------------------------
    def test_deployment_changes_are_audited(self, store: Store) -> None:
        _setup(store)
        _deploy(store)
        store.set_deployment_plan("proj", "prod", B, "canary 5%")
        store.set_deployment_plan("proj", "prod", B, "no change")  # a no-op: no record
        store.rollback_deployment("proj", "prod", "errors up")
        records = [r for r in store.audit_log() if r.action.startswith("deployment.")]
        assert [r.action for r in records] == [
            "deployment.create",
            "deployment.set_plan",
            "deployment.rollback",
        ]
        assert {(r.project, r.target) for r in records} == {("proj", "deployment:prod")}
        create, change, rollback = records
        assert create.before is None
        assert create.after == {
            "model": "employment",
            "revision": 1,
            "plan": {"shares": {"1": 100}, "shadow": []},
            "reason": "first rollout",
        }
        assert change.before == {"revision": 1, "plan": {"shares": {"1": 100}, "shadow": []}}
        assert change.after == {
            "revision": 2,
            "plan": {"shares": {"1": 95, "2": 5}, "shadow": []},
            "reason": "canary 5%",
        }
        assert (rollback.after or {})["restored_revision"] == 1
        assert store.verify_audit().ok

    def test_deployments_persist_across_reopening(
        self, store: Store, reopen: Callable[[], Store]
    ) -> None:
        _setup(store)
        _deploy(store, "prod")
        store.set_deployment_plan("proj", "prod", D, "promote")
        store.rollback_deployment("proj", "prod", "regression")
        _deploy(store, "canary", C)
        deployments = store.list_deployments("proj")
        history = store.deployment_history("proj", "prod")
        again = reopen()
        assert again.list_deployments("proj") == deployments
        assert again.deployment_history("proj", "prod") == history
        assert again.get_deployment("proj", "prod").revision == 3
        # And it goes on from there, with the old instance seeing the change.
        assert again.set_deployment_plan("proj", "prod", C, "after reopening").revision == 4
        assert store.get_deployment("proj", "prod").plan == C
