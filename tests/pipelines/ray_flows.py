"""Module-level steps for the Ray executor tests (Ray workers import them from this file)."""

from __future__ import annotations

import os

import loopwise as lw


@lw.step
def seed_value(base: int) -> int:
    return base


@lw.step
def branch(value: int, factor: int) -> dict[str, int]:
    run = lw.active_run()
    assert run is not None
    run.log_metric("factor", factor)
    return {"product": value * factor, "pid": os.getpid()}


@lw.step
def combine(parts: list[dict[str, int]]) -> int:
    return sum(part["product"] for part in parts)


@lw.step
def explode(value: int) -> int:
    if value > 0:
        raise ValueError(f"value {value} is too large for this step")
    return value


@lw.pipeline
def fan_out(base: int = 2) -> None:
    value = seed_value(base)
    parts = [branch.named(f"branch-{f}")(value, f) for f in (1, 2, 3, 4)]
    combine(parts)


@lw.pipeline
def partly_broken(base: int = 1) -> None:
    value = seed_value(base)
    explode(value)
    branch(value, 10)
