"""``assign``: deterministic, share-true and monotone where the docs say it is."""

from __future__ import annotations

from collections import Counter

import pytest

from loopwise.deployments import Deployment, TrafficPlan, assign
from loopwise.deployments.assign import BUCKETS, bucket
from loopwise.errors import InvalidArgumentError

KEYS = [f"user-{i}" for i in range(100_000)]
SOME_KEYS = KEYS[:20_000]  # enough to see every kind of move
NAME = "employment-prod"


def _assigned(plan: TrafficPlan, keys: list[str] = SOME_KEYS, name: str = NAME) -> list[int]:
    return [assign(plan, key, deployment=name) for key in keys]


def _deployment(plan: TrafficPlan, name: str = NAME) -> Deployment:
    return Deployment("proj", name, "employment", plan, 1, 0, 0)


@pytest.mark.parametrize(
    "shares",
    [{3: 95, 4: 5}, {3: 50, 4: 50}, {1: 1, 2: 99}, {3: 80, 4: 10, 5: 10}, {7: 34, 8: 33, 9: 33}],
)
def test_100k_keys_land_within_one_point_of_the_shares(shares: dict[int, int]) -> None:
    counts = Counter(_assigned(TrafficPlan(shares), KEYS))
    assert set(counts) == set(shares)
    for version, share in shares.items():
        assert abs(100 * counts[version] / len(KEYS) - share) < 1.0, (version, counts)


def test_each_version_owns_exactly_its_share_of_the_buckets() -> None:
    plan = TrafficPlan({4: 5, 3: 95})  # written in any order: laid out by ascending version
    owners = [assign(plan, key) for key in _keys_by_bucket("")]
    assert owners == [3] * 9500 + [4] * 500
    three = [assign(TrafficPlan({9: 10, 2: 60, 5: 30}), key) for key in _keys_by_bucket("")]
    assert three == [2] * 6000 + [5] * 3000 + [9] * 1000


def _keys_by_bucket(name: str) -> list[str]:
    """One key for every bucket (found by search), so that buckets, not keys, are counted."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < BUCKETS:
        key = f"k{i}"
        found.setdefault(bucket(name, key), key)
        i += 1
    return [found[b] for b in range(BUCKETS)]


def test_the_same_key_always_gets_the_same_version() -> None:
    plan = TrafficPlan({3: 50, 4: 50})
    first = _assigned(plan, KEYS[:2000])
    assert _assigned(plan, KEYS[:2000]) == first
    assert _assigned(TrafficPlan({4: 50, 3: 50}), KEYS[:2000]) == first
    assert [assign(_deployment(plan), key) for key in KEYS[:2000]] == first
    # Pinned: a release that changed the hash would move every user to another version.
    assert [bucket(NAME, "user-1"), bucket(NAME, "user-2"), bucket("", "user-1")] == [
        2408,
        9475,
        7032,
    ]
    assert bucket(NAME, 42) == bucket(NAME, "42") == 7137


def test_deployments_split_the_same_users_independently() -> None:
    plan = TrafficPlan({3: 50, 4: 50})
    here, there = _assigned(plan, name="a"), _assigned(plan, name="b")
    agree = sum(x == y for x, y in zip(here, there, strict=True)) / len(SOME_KEYS)
    assert 0.47 < agree < 0.53  # as chance would have it, not the same half


def test_a_growing_canary_keeps_every_key_it_had() -> None:
    steps = [{3: 95, 4: 5}, {3: 75, 4: 25}, {3: 50, 4: 50}, {4: 100}]
    before = _assigned(TrafficPlan(steps[0]))
    for shares in steps[1:]:
        after = _assigned(TrafficPlan(shares))
        moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
        assert moved and set(moved) == {(3, 4)}  # only ever from baseline to candidate
        before = after
    # And a rollback moves them all back, every key to where it started.
    assert _assigned(TrafficPlan(steps[0])) == _assigned(TrafficPlan({3: 95, 4: 5}))


def test_shrinking_a_candidate_moves_keys_only_back_to_the_baseline() -> None:
    """A canary whose number is lower than the baseline's: the order does not matter for two."""
    big, small = TrafficPlan({2: 30, 9: 70}), TrafficPlan({2: 10, 9: 90})
    moved = {(b, a) for b, a in zip(_assigned(big), _assigned(small), strict=True) if b != a}
    assert moved == {(2, 9)}


def test_moving_share_between_neighbours_leaves_the_others_alone() -> None:
    before = _assigned(TrafficPlan({3: 80, 4: 10, 5: 10}))
    after = _assigned(TrafficPlan({3: 80, 4: 5, 5: 15}))  # 4 and 5 are neighbours
    moved = {(b, a) for b, a in zip(before, after, strict=True) if b != a}
    assert moved == {(4, 5)}
    assert [k for k, v in zip(SOME_KEYS, before, strict=True) if v == 3] == [
        k for k, v in zip(SOME_KEYS, after, strict=True) if v == 3
    ]


def test_shadow_versions_are_never_assigned() -> None:
    plan = TrafficPlan({3: 100}, shadow=[4])
    assert set(_assigned(plan, KEYS[:5000])) == {3}


def test_bad_assign_arguments() -> None:
    plan = TrafficPlan({3: 100})
    for key in ["", None, 1.5, True, b"bytes"]:
        with pytest.raises(InvalidArgumentError, match="request key"):
            assign(plan, key)  # type: ignore[arg-type]
    for bad, match in [
        ({3: 90}, "got 90: add 10"),
        ({True: 100}, "name model versions by number"),
        (TrafficPlan({3: 100}, shadow=[[4]]), "plan.shadow"),  # type: ignore[list-item]
        (TrafficPlan({3: 100}, shadow=4), "plan.shadow as a list"),  # type: ignore[arg-type]
        (TrafficPlan([(3, 100)]), "at least one version"),  # type: ignore[arg-type]
        ("3=100", "Expected a traffic plan"),
    ]:
        with pytest.raises(InvalidArgumentError, match=match):
            assign(bad, "user")  # type: ignore[arg-type]
    assert assign({1: 100}, "user") == 1  # and True was not taken for 1 (nor 1 for True)
    with pytest.raises(InvalidArgumentError):
        assign({True: 100}, "user")
    with pytest.raises(InvalidArgumentError, match="own name"):
        assign(_deployment(plan), "user", deployment="other")
    with pytest.raises(InvalidArgumentError, match="deployment name"):
        assign(plan, "user", deployment="has space")
    assert assign(_deployment(plan), "user", deployment=NAME) == 3
