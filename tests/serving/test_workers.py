"""Model processes: outputs come back at once, the logged rows' durability follows."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import loopwise as lw
from loopwise.errors import UnavailableError
from loopwise.registry import models
from loopwise.serving.workers import LogTarget, ModelProcess
from loopwise.store import open_store
from loopwise.store.predictions import read_predictions, recover_predictions

FRAME = pd.DataFrame({"age": [20.0, 30.0, 45.0, 60.0], "hours": [10, 40, 40, 50]})

WINDOW_MS = 2000.0
"""At most one fsync per window: the first batch's rows are durable at once, the next batch's
only a window later, which leaves the process time to compute batches meanwhile."""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[models.LoadedModel]:
    from sklearn.linear_model import LogisticRegression

    lw.init(project="serve", uri=tmp_path_factory.mktemp("workers") / "store")
    model = LogisticRegression().fit(FRAME, [0, 1, 1, 1])
    with lw.start_run(name="fit", capture_env=False) as run:
        run.log_model(model, name="employment", input_example=FRAME.head(2))
    yield models.load("employment/1")
    lw.shutdown()


def _target(tmp_path: Path) -> LogTarget:
    store = open_store(tmp_path / "log")
    store.get_or_create_project("serve")
    store.close()
    return LogTarget(
        uri=str(tmp_path / "log"),
        token=None,
        project="serve",
        deployment="employment",
        spool_dir=str(tmp_path / "spool"),
        durability="fsync",
        fsync_window_ms=WINDOW_MS,
    )


def _rows(request_id: str) -> list[tuple[tuple[str, int, float], int]]:
    return [((request_id, int(time.time() * 1000), time.perf_counter()), len(FRAME))]


def test_a_process_computes_the_next_batch_while_the_last_one_syncs(
    loaded: models.LoadedModel, tmp_path: Path
) -> None:
    target = _target(tmp_path)
    worker = ModelProcess("employment", log=target)

    async def scenario() -> tuple[float, float]:
        try:
            return await batches()
        finally:
            worker.close()

    async def batches() -> tuple[float, float]:
        await worker.load(loaded)
        wanted = frozenset({"predict"})
        _, first = await worker.compute(FRAME, wanted, _rows("a"))
        await first.durable()  # the first fsync of a window runs at once
        started = time.monotonic()
        outputs, second = await worker.compute(FRAME, wanted, _rows("b"))
        assert list(outputs["predict"]) == list(loaded.predict(FRAME))
        assert second.seq > first.seq and second.channel.durable_seq < second.seq
        _, third = await worker.compute(FRAME, wanted, _rows("c"))  # computed while b waits
        computed_s = time.monotonic() - started
        await asyncio.gather(second.durable(), third.durable())
        return computed_s, time.monotonic() - started

    computed_s, durable_s = asyncio.run(scenario())
    assert computed_s < durable_s  # both batches were answered before their rows were durable
    store = open_store(target.uri)
    recover_predictions(store, Path(target.spool_dir))
    log = read_predictions(store, "serve", "employment")
    assert sorted({r.split(":")[0] for r in log["request_id"]}) == ["a", "b", "c"]
    assert len(log) == 3 * len(FRAME) and log["request_id"].is_unique
    store.close()


def test_rows_waiting_to_be_durable_fail_when_the_process_dies(
    loaded: models.LoadedModel, tmp_path: Path
) -> None:
    worker = ModelProcess("employment", log=_target(tmp_path))

    async def scenario() -> None:
        try:
            await batches()
        finally:
            worker.close()

    async def batches() -> None:
        await worker.load(loaded)
        _, first = await worker.compute(FRAME, frozenset({"predict"}), _rows("a"))
        await first.durable()
        _, second = await worker.compute(FRAME, frozenset({"predict"}), _rows("b"))
        assert worker._process is not None
        os.kill(worker._process.pid, signal.SIGKILL)
        with pytest.raises(UnavailableError, match="stopped"):
            await second.durable()  # never acknowledged: the client is told to retry
        await worker.load(loaded)  # a new process for the next batch
        outputs, third = await worker.compute(FRAME, frozenset({"predict"}), _rows("c"))
        await third.durable()
        assert list(outputs["predict"]) == list(loaded.predict(FRAME))

    asyncio.run(scenario())


def test_pipelined_batches_get_their_own_answers_durable_on_arrival(
    loaded: models.LoadedModel, tmp_path: Path
) -> None:
    """Batches sent while others compute come back in order, each with its own rows; with
    fsync and no window the process syncs before it answers, so each answer is durable."""
    target = dataclasses.replace(_target(tmp_path), fsync_window_ms=0.0)
    worker = ModelProcess("employment", log=target)
    frames = [FRAME.iloc[[i % len(FRAME)] * (i + 1)].reset_index(drop=True) for i in range(6)]

    async def scenario() -> list[tuple[Any, Any]]:
        try:
            await worker.load(loaded)
            wanted = frozenset({"predict"})
            return await asyncio.gather(
                *(worker.compute(f, wanted, [((f"r{i}", 0, time.perf_counter()), len(f))])
                  for i, f in enumerate(frames))
            )  # fmt: skip
        finally:
            worker.close()

    answers = asyncio.run(scenario())
    for frame, (outputs, receipt) in zip(frames, answers, strict=True):
        assert list(outputs["predict"]) == list(loaded.predict(frame))
        assert receipt.channel.durable_seq >= receipt.seq > 0  # durable when it arrived
    assert [r.seq for _, r in answers] == sorted(r.seq for _, r in answers)
    store = open_store(target.uri)
    recover_predictions(store, Path(target.spool_dir))
    assert len(read_predictions(store, "serve", "employment")) == sum(len(f) for f in frames)
    store.close()


def test_every_batch_in_flight_fails_when_the_process_dies(
    loaded: models.LoadedModel, tmp_path: Path
) -> None:
    worker = ModelProcess("employment")
    big = pd.concat([FRAME] * 100_000, ignore_index=True)  # tens of ms to receive and compute

    async def scenario() -> list[Any]:
        try:
            await worker.load(loaded)
            wanted = frozenset({"predict"})
            flights = [asyncio.ensure_future(worker.compute(big, wanted)) for _ in range(2)]
            await asyncio.sleep(0)  # both are sent: the process has two batches in flight
            assert worker._process is not None and len(worker._channel.replies) == 2  # type: ignore[union-attr]
            os.kill(worker._process.pid, signal.SIGKILL)
            failed = await asyncio.gather(*flights, return_exceptions=True)
            await worker.load(loaded)  # a new process for the next batch
            outputs, _ = await worker.compute(FRAME, wanted)
            assert list(outputs["predict"]) == list(loaded.predict(FRAME))
            return failed
        finally:
            worker.close()

    failed = asyncio.run(scenario())
    assert all(isinstance(f, UnavailableError) for f in failed), failed
