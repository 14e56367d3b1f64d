"""``Replayer`` serves rows through a deployment's plan as an inference server would, and says
which version gave each live answer (``versions_``), as the prediction log records it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import loopwise as lw
from loopwise.context import Context
from loopwise.deployments import assign
from loopwise.monitoring import monitoring_frame

from .world import FEATURES, START_MS, window_rows


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Context]:
    context = lw.init(project="replay", uri=tmp_path / "store")
    yield context
    lw.shutdown()


def _two_versions() -> tuple[Any, Any]:
    # scikit-learn is an optional extra ([sklearn]): only the tests that train need it.
    from sklearn.linear_model import LogisticRegression

    models = []
    for change in (100, -100):  # one model follows x1, the other x2
        frame = window_rows(0, 400, change=change, task="classification")
        model = LogisticRegression().fit(frame[FEATURES], frame["y"])
        lw.models.log_model(model, "toy", input_example=frame[FEATURES].head(2))
        models.append(model)
    return models[0], models[1]


def test_serve_says_which_version_answered_each_row(store: Context) -> None:
    first, second = _two_versions()
    lw.deployments.create("toy-prod", "toy", {1: 50, 2: 50})
    replayer = lw.autopilot.Replayer("toy-prod")
    assert replayer.versions_.tolist() == []  # nothing served yet
    rows = window_rows(1, 300, change=1, task="classification")[FEATURES]
    ids = [f"r{i}" for i in range(len(rows))]
    stamps = START_MS + np.arange(len(rows))
    answers = replayer.serve(rows, ids, stamps)
    deployment = lw.deployments.get("toy-prod")
    assert replayer.versions_.tolist() == [assign(deployment, key) for key in ids]
    assert set(replayer.versions_.tolist()) == {1, 2}
    by_version = {1: first.predict(rows), 2: second.predict(rows)}
    expected = [by_version[v][i] for i, v in enumerate(replayer.versions_.tolist())]
    assert answers.tolist() == expected
    logged = monitoring_frame("toy-prod", START_MS, START_MS + len(rows))
    logged = logged.set_index("request_id").loc[ids]
    assert logged["version"].tolist() == replayer.versions_.tolist()
