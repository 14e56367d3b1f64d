"""Which version answers a request: a deterministic, stateless assignment by request key.

A key (a user id, a session id) is hashed with the deployment's name into one of ``BUCKETS``
buckets (sha256, so the same in every process and release); the plan's versions own
consecutive ranges of buckets, in ascending version order, each as wide as its share. A key
therefore stays on one version while the plan stands, and each version gets exactly its share
of the buckets. When share moves between two versions that are neighbours in that order — any
change of a two-version plan, such as a canary growing from 5% to 25% — keys move only from
the shrinking version to the growing one; every other version keeps exactly its keys.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from typing import Any

from loopwise.errors import InvalidArgumentError
from loopwise.store.checks import check_name, check_traffic_plan
from loopwise.store.entities import Deployment, TrafficPlan

__all__ = ["BUCKETS", "assign", "bucket"]

BUCKETS = 10_000
"""Buckets a plan's shares divide: one percent is 100 buckets."""
_PER_PERCENT = BUCKETS // 100


def _key_text(request_key: object) -> str:
    if isinstance(request_key, bool) or not isinstance(request_key, (str, int)):
        raise InvalidArgumentError(
            f"Expected the request key as a string (or an integer), got "
            f"{type(request_key).__name__}. Use what identifies a user or session, e.g. "
            "str(user_id).",
            parameter="request_key",
        )
    text = str(request_key)
    if not text:
        raise InvalidArgumentError(
            "Expected a non-empty request key, got ''. Every request without a key would land "
            "on the same version: pass a user or session id.",
            parameter="request_key",
        )
    return text


def bucket(deployment: str, request_key: str | int) -> int:
    """The bucket (0 to ``BUCKETS - 1``) of a request key in a deployment.

    The deployment's name is part of the hash, so two deployments split the same users
    independently. An integer key is the same key as its decimal text.
    """
    text = f"{deployment}\x00{_key_text(request_key)}"
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def assign(
    deployment_or_plan: Deployment | TrafficPlan | Mapping[int, int],
    request_key: str | int,
    *,
    deployment: str | None = None,
) -> int:
    """The version that answers ``request_key`` under a deployment's plan.

    Given a plan rather than a ``Deployment``, pass the deployment's name as ``deployment``
    to get the answer its inference servers give (the name is part of the hash; default "").
    Shadow versions are never assigned: they receive a copy of every request.
    """
    plan: object
    if isinstance(deployment_or_plan, Deployment):
        if deployment is not None and deployment != deployment_or_plan.name:
            raise InvalidArgumentError(
                f"Expected deployment to be None or the deployment's own name "
                f"{deployment_or_plan.name!r}, got {deployment!r}.",
                parameter="deployment",
            )
        name, plan = deployment_or_plan.name, deployment_or_plan.plan
    else:
        name = "" if deployment is None else check_name(deployment, "deployment")
        plan = deployment_or_plan
    position = bucket(name, request_key)
    for version, edge in _edges(plan):
        if position < edge:
            return version
    raise AssertionError("unreachable: the shares of a checked plan cover every bucket")


def _edges(plan: object) -> tuple[tuple[int, int], ...]:
    """``(version, end bucket)`` in ascending version order, remembered per plan: checking a
    plan costs several times more than hashing a key, and a server assigns under one plan."""
    shares: Mapping[Any, Any]
    shadow: Any
    if isinstance(plan, TrafficPlan):
        shares, shadow = plan.shares, plan.shadow
    elif isinstance(plan, Mapping):
        shares, shadow = plan, []
    else:
        check_traffic_plan(plan)  # refuses it, saying what a plan is
        raise AssertionError("unreachable")
    try:
        # Types are part of the key: True == 1, but True is no version number.
        key = tuple((type(k), k, type(v), v) for k, v in shares.items())
        return _cached_edges(key, tuple((type(v), v) for v in shadow))
    except (TypeError, AttributeError):  # not a mapping, or unhashable: not a valid plan
        check_traffic_plan(plan)
        raise


@functools.lru_cache(maxsize=1024)
def _cached_edges(
    shares: tuple[tuple[type, Any, type, Any], ...], shadow: tuple[tuple[type, Any], ...]
) -> tuple[tuple[int, int], ...]:
    checked = check_traffic_plan(
        TrafficPlan({k: v for _, k, _, v in shares}, [v for _, v in shadow])
    )
    edges, edge = [], 0
    for version, share in checked.shares.items():  # ascending versions
        edge += share * _PER_PERCENT
        edges.append((version, edge))
    return tuple(edges)
