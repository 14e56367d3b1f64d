"""A served name's queue, built from what it takes from its server: a ``QueueContext``, no app."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import loopwise as lw
from loopwise.registry import models
from loopwise.serving.batching import BatchPolicy
from loopwise.serving.metrics import ServingMetrics
from loopwise.serving.models import ServedModels
from loopwise.serving.protocols import parse_records
from loopwise.serving.queues import ModelQueue, QueueContext
from loopwise.serving.schema import NO_SIGNATURE_LIMIT, rows_of

FRAME = pd.DataFrame({"age": [20.0, 30.0, 45.0, 60.0], "hours": [10, 40, 40, 50]})
LABELS = [0, 1, 1, 1]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[models.LoadedModel]:
    from sklearn.linear_model import LogisticRegression

    lw.init(project="queues", uri=tmp_path_factory.mktemp("queues") / "store")
    model = LogisticRegression().fit(FRAME, LABELS)
    with lw.start_run(name="fit", capture_env=False) as run:
        run.log_model(model, name="employment", input_example=FRAME.head(2))
    yield models.load("employment/1")
    lw.shutdown()


def test_a_queue_computes_and_counts_with_its_context_alone(loaded: models.LoadedModel) -> None:
    metrics = ServingMetrics()
    context = QueueContext(ServedModels.fixed({"employment": loaded}), metrics)
    queue = ModelQueue("employment", context, BatchPolicy(), None)

    async def ask() -> Any:
        schema = queue.schema_for(loaded)
        checked = schema.check(parse_records(FRAME.to_dict(orient="records"), NO_SIGNATURE_LIMIT))
        payload = (loaded.version.version, checked, frozenset({"predict"}))
        return await queue.batcher.submit(payload, rows_of(checked), None)

    try:
        version, outputs = asyncio.run(ask())
    finally:
        queue.close()
    assert version == 1
    assert outputs["predict"].tolist() == [int(v) for v in loaded.predict(FRAME)]
    text = metrics.render()[0].decode()
    assert 'loopwise_batch_rows_count{model="employment"} 1.0' in text
    assert 'loopwise_queue_rows{model="employment"} 0.0' in text  # queued, then taken


def test_the_log_target_names_the_spool_project_and_role(
    loaded: models.LoadedModel, tmp_path: Path
) -> None:
    from loopwise.store import open_store
    from loopwise.store.predictions import PredictionSpool

    served = ServedModels.fixed({"employment": loaded})
    assert QueueContext(served).log_target("employment") is None  # no prediction log
    store = open_store(tmp_path / "logstore")
    spool = PredictionSpool(store, directory=tmp_path / "spool", durability="write")
    context = QueueContext(served, prediction_log=spool, project="queues")
    target = context.log_target("toy-ab", shadow=True)
    assert target is not None
    assert (target.project, target.deployment, target.shadow) == ("queues", "toy-ab", True)
    assert target.spool_dir == str(tmp_path / "spool") and target.durability == "write"
    assert target.uri == store.uri and target.token is None
    store.close()
