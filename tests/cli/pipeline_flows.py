"""Small pipelines that the CLI tests run by path (``tests/cli/pipeline_flows.py:flow``).

Plain JSON values only, so that each step is quick and the file needs nothing but Loopwise.
"""

from __future__ import annotations

from pathlib import Path

import loopwise as lw
from loopwise.pipelines import output


@lw.step
def load(n: int) -> list[int]:
    return list(range(n))


@lw.step(outputs=("train", "valid"))
def split(data: list[int], frac: float = 0.25) -> tuple[list[int], list[int]]:
    cut = int(len(data) * (1 - frac))
    return data[:cut], data[cut:]


@lw.step
def fit(train: list[int], scale: float = 1.0) -> float:
    return scale * sum(train) / max(len(train), 1)


@lw.step
def evaluate(model: float, valid: list[int], flag: str = "") -> dict[str, float]:
    # A flag file the tests create between a failing run and its resume.
    if flag and not Path(flag).exists():
        raise RuntimeError(f"the flag file {flag} does not exist yet")
    error = sum(abs(v - model) for v in valid) / max(len(valid), 1)
    return {"error": error, "score": -error}


@lw.pipeline
def flow(n: int = 20, scale: float = 1.0, flag: str = "") -> None:
    train, valid = split(load(n))
    evaluate(fit(train, scale=scale), valid, flag=flag)


@lw.step
def halve(x: float) -> float:
    return x / 2


@lw.pipeline
def mistyped() -> None:
    halve(load(3))  # a list[int] into a float input


@lw.step
def grow(values: list[int]) -> list[int]:
    return [*values, len(values)]


@lw.pipeline
def looped() -> None:
    first = grow.named("first")(output("second"))
    grow.named("second")(first)


@lw.pipeline
def needs_n(n: int) -> None:
    load(n)
