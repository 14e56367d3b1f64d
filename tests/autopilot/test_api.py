"""``lw.autopilot``'s entry points with an explicit ``store`` and ``project``: they act on that
project whatever the current context is (as ``loopwise server --autopilot-every`` and other
long-lived callers need)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import loopwise as lw

from .world import DAY_MS, DEPLOYMENT, FEATURES, START_MS, World, window_rows


def test_run_once_checks_the_traffic_of_the_project_given(tmp_path: Path) -> None:
    context = lw.init(project="auto", uri=tmp_path / "store")
    try:
        world = World(change=100)
        world.setup()
        world.play(range(0, 1))
        frame = window_rows(1, world.rows, change=world.change, task=world.task)
        start = START_MS + DAY_MS
        stamps = np.linspace(start, start + DAY_MS - 1, len(frame)).astype(np.int64)
        ids = [f"w1-{i}" for i in range(len(frame))]
        world.replayer.serve(frame[FEATURES], ids, stamps)
        lw.log_outcomes(DEPLOYMENT, ids, frame["y"].tolist())
        lw.init(project="elsewhere", uri=tmp_path / "store")  # the same store, another project
        tick = lw.autopilot.run_once(
            DEPLOYMENT, now_ms=START_MS + 2 * DAY_MS, store=context.store, project="auto"
        )
        assert [d.kind for d in tick.decisions] == ["observe"]
        assert tick.decisions[0].evidence["check"]["labelled"] == world.rows
    finally:
        lw.shutdown()
