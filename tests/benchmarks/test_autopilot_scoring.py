"""The autopilot suite's pure helpers (``benchmarks/autopilot_scoring.py``): the oracle's K,
decay starts, and windows until a post-change model serves. The suite itself is a benchmark,
never run by the tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest


def _scoring() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "autopilot_scoring.py"
    spec = importlib.util.spec_from_file_location("autopilot_scoring", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scoring = _scoring()


def test_best_window_count_is_the_best_mean_and_the_smaller_on_a_tie() -> None:
    assert scoring.best_window_count({1: [0.7, 0.9], 3: [0.8, 0.85], 6: [0.6, 0.6]}) == 3
    assert scoring.best_window_count({4: [0.8, 0.8], 2: [0.9, 0.7]}) == 2
    with pytest.raises(ValueError, match="expected at least one K"):
        scoring.best_window_count({})


def test_labelled_until_counts_the_warm_up_and_the_delay() -> None:
    # Warm-up windows 0-4 are labelled from the start; window 5 is served knowing them.
    assert scoring.labelled_until(5, warmup=5, delay=1) == 4
    assert scoring.labelled_until(6, warmup=5, delay=1) == 4  # window 5's labels arrive in 6
    assert scoring.labelled_until(7, warmup=5, delay=1) == 5
    assert scoring.labelled_until(6, warmup=5, delay=0) == 5


def test_a_decay_starts_where_the_oracle_pulls_ahead_for_three_windows() -> None:
    static = [0.8, 0.8, 0.7, 0.7, 0.7, 0.8, 0.8, 0.7, 0.7]
    oracle = [0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]
    # Windows 2-4 start a decay; 7-8 are only two windows: no decay.
    assert scoring.decay_starts(static, oracle) == [2]
    assert scoring.decay_starts(static, oracle, run=2) == [2, 7]


def test_windows_to_post_change_waits_for_every_row_and_the_labels() -> None:
    served = [[1], [1], [1, 2], [2], [2, 3], [3]]
    registered = {1: -1, 2: 2, 3: 3}
    # Version 2 was registered in window 2, the decay's start: with labels one window late it
    # cannot have learnt the change; version 3 (window 3) can, and serves every row from 5.
    assert scoring.windows_to_post_change(2, served, registered, delay=1) == 3
    assert scoring.windows_to_post_change(2, served, registered, delay=0) == 1
    assert scoring.windows_to_post_change(2, served[:5], registered, delay=1) is None
