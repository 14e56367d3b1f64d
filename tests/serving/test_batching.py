"""The adaptive batcher: batches equal one-at-a-time answers, deadlines are kept or refused."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from loopwise.errors import InvalidArgumentError, UnavailableError
from loopwise.serving import batching
from loopwise.serving.batching import Batcher, BatchPolicy, LatencyModel


class Doubler:
    """A model that doubles each row, records the batches it saw, and can be made slow."""

    def __init__(self, seconds_per_batch: float = 0.0, fail_on: int | None = None) -> None:
        self.seconds_per_batch = seconds_per_batch
        self.fail_on = fail_on
        self.batches: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, payloads: Sequence[Any]) -> list[Any]:
        self.threads.add(threading.current_thread().name)
        self.batches.append(sum(len(p) for p in payloads))
        if self.seconds_per_batch:
            time.sleep(self.seconds_per_batch)
        return [
            ValueError("bad row") if self.fail_on in p else [2 * v for v in p] for p in payloads
        ]


async def _submit_all(batcher: Batcher, payloads: list[list[int]], **kw: Any) -> list[Any]:
    """Each request's rows or error; a refusal at admission is an error like any other."""

    async def one(p: list[int]) -> Any:
        return await batcher.submit(p, len(p), **kw)

    return await asyncio.gather(*(one(p) for p in payloads), return_exceptions=True)


def test_concurrent_requests_share_batches_and_get_their_own_rows() -> None:
    model = Doubler(seconds_per_batch=0.01)
    batcher = Batcher("m", model, BatchPolicy(max_batch_rows=8, max_wait_s=0))
    payloads = [[i, i + 100] for i in range(20)]  # 40 rows

    async def main() -> list[Any]:
        return await _submit_all(batcher, payloads)

    results = asyncio.run(main())
    batcher.close()
    assert results == [[2 * a, 2 * b] for a, b in payloads]  # batched == one at a time
    assert max(model.batches) <= 8 and sum(model.batches) == 40
    assert len(model.batches) < 20  # requests were merged
    assert all(name.startswith("batch-m") for name in model.threads)  # never the event loop
    assert sum(batcher.batch_sizes.values()) == len(model.batches)


def test_a_bad_request_fails_alone() -> None:
    model = Doubler(fail_on=13)
    batcher = Batcher("m", model, BatchPolicy(max_wait_s=0))
    results = asyncio.run(_submit_all(batcher, [[1], [13], [2]]))
    batcher.close()
    assert results[0] == [2] and results[2] == [4]
    assert isinstance(results[1], ValueError)


def test_a_request_bigger_than_a_batch_runs_alone() -> None:
    model = Doubler()
    batcher = Batcher("m", model, BatchPolicy(max_batch_rows=4, max_wait_s=0))
    results = asyncio.run(_submit_all(batcher, [list(range(10)), [1]]))
    batcher.close()
    assert results[0] == [2 * v for v in range(10)] and results[1] == [2]
    assert 10 in model.batches


def test_requests_that_cannot_meet_their_deadline_get_503_at_once() -> None:
    model = Doubler(seconds_per_batch=0.05)
    batcher = Batcher("m", model, BatchPolicy(max_batch_rows=1, max_wait_s=0, slo_s=0.12))

    async def main() -> list[Any]:
        await batcher.submit([0], 1)  # teaches the batcher its latency (~50 ms)
        started = time.monotonic()
        results = await _submit_all(batcher, [[i] for i in range(10)])
        return [*results, time.monotonic() - started]

    *results, elapsed = asyncio.run(main())
    batcher.close()
    refused = [r for r in results if isinstance(r, UnavailableError)]
    answered = [r for r in results if isinstance(r, list)]
    # One batch at a time at ~50 ms: two fit the 120 ms deadline, the rest are refused.
    assert 1 <= len(answered) <= 3 and len(refused) == 10 - len(answered)
    assert all(r.details["reason"] == "deadline" and r.retry_after_s > 0 for r in refused)
    assert elapsed < 0.5  # nobody waited for a queue that could not serve them in time


def test_a_per_request_deadline_overrides_the_slo() -> None:
    model = Doubler(seconds_per_batch=0.05)
    batcher = Batcher("m", model, BatchPolicy(max_batch_rows=1, max_wait_s=0, slo_s=0.06))

    async def main() -> list[Any]:
        await batcher.submit([0], 1)
        return await _submit_all(batcher, [[i] for i in range(4)], deadline_s=5.0)

    results = asyncio.run(main())
    batcher.close()
    assert results == [[0], [2], [4], [6]]


def test_a_full_queue_refuses_with_retry_after() -> None:
    model = Doubler(seconds_per_batch=0.02)
    batcher = Batcher("m", model, BatchPolicy(max_batch_rows=2, max_wait_s=0, max_queue_rows=4))
    results = asyncio.run(_submit_all(batcher, [[i] for i in range(10)]))
    batcher.close()
    refused = [r for r in results if isinstance(r, UnavailableError)]
    assert refused and all(r.details["reason"] == "queue_full" for r in refused)
    assert sum(isinstance(r, list) for r in results) >= 4


def test_a_lone_request_is_not_held() -> None:
    model = Doubler(seconds_per_batch=0.001)
    batcher = Batcher("m", model, BatchPolicy(max_batch_rows=64, max_wait_s=0.2))

    async def lone() -> float:
        await batcher.submit([1], 1)
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await batcher.submit([1], 1)
        return time.monotonic() - started

    # Requests 50 ms apart: holding for more would be pure delay.
    assert asyncio.run(lone()) < 0.1
    batcher.close()


def test_a_steady_stream_is_gathered_into_batches() -> None:
    model = Doubler(seconds_per_batch=0.005)
    batcher = Batcher("m", model, BatchPolicy(max_batch_rows=64, max_wait_s=0.01))

    async def stream() -> list[Any]:
        futures = []
        for i in range(60):
            futures.append(batcher.submit([i], 1))
            await asyncio.sleep(0.0005)
        return await asyncio.gather(*futures)

    assert asyncio.run(stream()) == [[2 * i] for i in range(60)]
    batcher.close()
    assert len(model.batches) < 30


def test_an_idle_model_holds_while_requests_arrive_faster_than_its_fixed_cost() -> None:
    model = Doubler()
    batcher = Batcher("m", model, BatchPolicy(max_batch_rows=64, max_wait_s=0.05))
    for _ in range(3):
        batcher.latency.observe(1, 0.02)  # 20 ms per batch, whatever its size

    async def burst() -> tuple[bool, list[Any]]:
        futures = []
        held = False
        for i in range(8):
            futures.append(batcher.submit([i], 1))
            held = held or batcher._timer is not None
            await asyncio.sleep(0.001)
        return held, await asyncio.gather(*futures)

    held, results = asyncio.run(burst())
    batcher.close()
    assert held and results == [[2 * i] for i in range(8)]
    assert len(model.batches) <= 3  # without holding, the first requests would go one by one


def test_async_run_batch_runs_on_the_loop() -> None:
    seen: list[int] = []

    async def run(payloads: Sequence[Any]) -> list[Any]:
        seen.append(len(payloads))
        await asyncio.sleep(0.01)
        return [p * 3 for p in payloads]

    batcher = Batcher("m", run, BatchPolicy(max_wait_s=0))

    async def main() -> list[Any]:
        return await asyncio.gather(*(batcher.submit(i, 1) for i in range(5)))

    assert asyncio.run(main()) == [0, 3, 6, 9, 12]
    batcher.close()
    assert sum(seen) == 5


class Gate:
    """An async model whose batches finish only when the test opens their gate, in order."""

    def __init__(self) -> None:
        self.started: list[list[int]] = []
        self.gates: list[asyncio.Event] = []
        self.running = 0
        self.most_running = 0

    async def run(self, payloads: Sequence[Any]) -> list[Any]:
        gate = asyncio.Event()
        self.started.append(list(payloads))
        self.gates.append(gate)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        await gate.wait()
        self.running -= 1
        return [p * 10 for p in payloads]


async def _until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


@pytest.mark.parametrize("max_in_flight", [1, 2, 3])
def test_batches_pipeline_up_to_max_in_flight(max_in_flight: int) -> None:
    model = Gate()
    batcher = Batcher("m", model.run, BatchPolicy(max_wait_s=0, max_in_flight=max_in_flight))

    async def main() -> list[Any]:
        first = batcher.submit(0, 1)  # an idle model takes it at once
        await _until(lambda: len(model.started) == 1)
        later = [batcher.submit(i, 1) for i in range(1, 6)]
        await _until(lambda: len(model.started) == max_in_flight)
        for _ in range(5):
            await asyncio.sleep(0)
        # No more than max_in_flight batches are handed over, each of the rows queued by then.
        assert len(model.started) == max_in_flight
        while not all(f.done() for f in [first, *later]):
            for gate in model.gates:
                gate.set()
            await asyncio.sleep(0)
        return [await f for f in [first, *later]]

    assert asyncio.run(main()) == [0, 10, 20, 30, 40, 50]
    batcher.close()
    assert model.most_running == max_in_flight
    assert sorted(p for batch in model.started for p in batch) == [0, 1, 2, 3, 4, 5]


def test_a_pipelined_batch_is_timed_from_the_end_of_the_one_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The latency model learns the model's own time, not the wait behind another batch."""
    now = [100.0]
    clock = type("Clock", (), {"monotonic": lambda: now[0], "perf_counter": lambda: now[0]})
    monkeypatch.setattr(batching, "time", clock)
    model = Gate()
    batcher = Batcher("m", model.run, BatchPolicy(max_wait_s=0, max_in_flight=2))

    async def main() -> None:
        first = batcher.submit(1, 1)
        second = batcher.submit(2, 1)  # handed over at once, behind the first
        await _until(lambda: len(model.gates) == 2)
        now[0] += 0.020  # the first computes for 20 ms
        model.gates[0].set()
        await first
        now[0] += 0.020  # then the second for 20 ms: 40 ms after it was handed over
        model.gates[1].set()
        await second

    asyncio.run(main())
    batcher.close()
    assert model.started == [[1], [2]]
    assert batcher.latency.predict(1) == pytest.approx(0.020)


def test_latency_model_learns_fixed_and_per_row_cost() -> None:
    latency = LatencyModel()
    for rows in (1, 8, 32, 64, 128) * 10:
        latency.observe(rows, 0.004 + 0.0001 * rows)
    a, b = latency.coefficients()
    assert a == pytest.approx(0.004, rel=1e-3) and b == pytest.approx(0.0001, rel=1e-3)
    assert latency.predict(100) == pytest.approx(0.014, rel=1e-3)


def test_latency_model_follows_a_slower_model() -> None:
    latency = LatencyModel()
    for _ in range(50):
        latency.observe(10, 0.001)
    for _ in range(100):
        latency.observe(10, 0.010)
    assert latency.predict(10) == pytest.approx(0.010, rel=0.05)


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_batch_rows", 0),
        ("max_wait_s", -1),
        ("slo_s", 0),
        ("max_queue_rows", 0),
        ("max_in_flight", 0),
        ("max_in_flight", 17),
    ],
)
def test_policy_rejects_out_of_range_values(field: str, value: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=field):
        BatchPolicy(**{field: value})
