"""The steps and pipelines that ``benchmarks/pipelines.py`` times, at module level in a file.

The local and Ray executors' workers import each step by its module and file, so the steps
cannot live in the benchmark's ``__main__``. ``chain``: ten trivial steps one after another
(two write a tiny DataFrame, eight a small JSON value). ``branches``: four CPU-bound steps
side by side, joined by a last step.
"""

from __future__ import annotations

import time

import pandas as pd

import loopwise as lw

CHAIN_STEPS = 10
BRANCHES = 4


@lw.step
def make_frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"x": range(rows), "y": [i % 3 for i in range(rows)]})


@lw.step
def summarize(frame: pd.DataFrame) -> dict[str, int]:
    return {"rows": len(frame), "total": int(frame["x"].sum())}


@lw.step
def bump(value: dict[str, int]) -> dict[str, int]:
    return {**value, "total": value["total"] + 1}


@lw.step
def to_frame(value: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame({"key": list(value), "value": list(value.values())})


@lw.pipeline
def chain(rows: int = 10) -> None:
    value = summarize(make_frame(rows))
    for index in range(CHAIN_STEPS - 3):
        value = bump.named(f"bump-{index + 1}")(value)
    to_frame(value)


def chain_plain(rows: int = 10) -> pd.DataFrame:
    """The same ten calls as ``chain``, as plain functions: the floor without any pipeline."""
    value = summarize(make_frame(rows))
    for _ in range(CHAIN_STEPS - 3):
        value = bump(value)
    frame: pd.DataFrame = to_frame(value)
    return frame


@lw.step
def burn(iterations: int, branch: int) -> float:
    """Single-threaded pure-Python arithmetic: the GIL keeps it on one core."""
    total = 0.0
    for i in range(iterations):
        total += (i * branch) % 7 * 0.5
    return total


@lw.step
def join(parts: list[float]) -> float:
    return sum(parts)


@lw.pipeline
def branches(iterations: int = 1_000_000) -> None:
    join([burn.named(f"burn-{b + 1}")(iterations, b + 1) for b in range(BRANCHES)])


def branches_plain(iterations: int = 1_000_000) -> float:
    """The same five calls as ``branches``, one after another, as plain functions."""
    total: float = join([burn(iterations, b + 1) for b in range(BRANCHES)])
    return total


def worker_ready(hold_s: float) -> float:
    """Run in a fresh executor worker: import what a step's worker imports, say when ready.

    Holding the worker a moment makes the pool start a new process for each pending call.
    """
    import loopwise.pipelines.execute  # noqa: F401

    ready = time.time()
    time.sleep(hold_s)
    return ready
