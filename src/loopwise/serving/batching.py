"""Adaptive batching: concurrent requests for one model merged into batches and split back.

Each served model has a ``Batcher``. A request joins the model's queue with its rows and a
deadline (the model's latency SLO, or the request's own). The batcher computes in a worker
thread or a model process, never on the event loop; while a batch runs, the next requests queue
up, so batches grow with load by themselves and a lone request waits for nothing.

Batches are pipelined: while one computes, the next is handed over as soon as it is worth a
batch (``max_in_flight``, 2 by default), so the model starts it the moment the last one ends
rather than when a busy event loop gets round to noticing the answer.

The batcher learns how long the model takes for a batch of ``n`` rows (a least-squares line
``a + b·n`` over recent batches, weighted toward the newest) and uses it twice:

* **dispatch**: when the worker is idle and more requests are arriving, it may hold a batch up
  to ``max_wait_s`` to collect more rows, but never so long that the oldest queued request
  would miss its deadline;
* **admission**: a request whose deadline cannot be met — given the work queued ahead of it
  and its own batch — is refused at once with ``UnavailableError`` (HTTP 503 with
  ``Retry-After``) instead of waiting; so is one that would overflow the bounded queue, and
  one whose deadline passed while it queued.

``run_batch`` gets the queued requests' payloads and returns one result per request, in order;
it may return an exception for a request to fail that request alone.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from loopwise.errors import InvalidArgumentError, UnavailableError

__all__ = ["BatchPolicy", "Batcher", "LatencyModel"]

RunBatch = Callable[[Sequence[Any]], Sequence[Any] | Awaitable[Sequence[Any]]]
"""``run_batch(payloads) -> results``: one result (or exception) per payload, in order. A plain
function runs in the batcher's worker thread; a coroutine function runs on the event loop (it
awaits work done elsewhere, e.g. in a model process)."""


@dataclass(frozen=True)
class BatchPolicy:
    """How one model's requests are batched; every field has a documented default."""

    max_batch_rows: int = 256
    """A batch holds at most this many rows (a bigger request runs alone)."""
    max_wait_s: float = 0.002
    """The longest an idle worker holds a batch to collect more rows."""
    slo_s: float = 1.0
    """Default deadline: a request must be answered within this, or get 503 at once."""
    max_queue_rows: int = 4096
    """Rows allowed to wait; beyond them requests get 503."""
    max_in_flight: int = 2
    """Batches handed to the model at once; above 1, the next batch waits at the model while the
    last computes (pipelining), so the model does not idle while the event loop is busy."""

    def __post_init__(self) -> None:
        checks = {
            "max_batch_rows": self.max_batch_rows >= 1,
            "max_wait_s": 0 <= self.max_wait_s <= 10,
            "slo_s": 0 < self.slo_s <= 3600,
            "max_queue_rows": self.max_queue_rows >= 1,
            "max_in_flight": 1 <= self.max_in_flight <= 16,
        }
        for name, ok in checks.items():
            if not ok:
                raise InvalidArgumentError(
                    f"Batch policy {name}={getattr(self, name)!r} is out of range "
                    "(max_batch_rows and max_queue_rows >= 1, 0 <= max_wait_s <= 10, "
                    "0 < slo_s <= 3600, 1 <= max_in_flight <= 16).",
                    parameter=name,
                )


class LatencyModel:
    """Batch latency as ``a + b·rows``, fitted online with exponential forgetting."""

    def __init__(self, decay: float = 0.95) -> None:
        self.decay = decay
        self.w = self.sx = self.sy = self.sxx = self.sxy = 0.0
        self.observations = 0
        self.a = self.b = 0.0  # refitted on each observation, read on each request

    def observe(self, rows: int, seconds: float) -> None:
        d = self.decay
        self.w = d * self.w + 1.0
        self.sx = d * self.sx + rows
        self.sy = d * self.sy + seconds
        self.sxx = d * self.sxx + rows * rows
        self.sxy = d * self.sxy + rows * seconds
        self.observations += 1
        mean_x, mean_y = self.sx / self.w, self.sy / self.w
        var = self.sxx / self.w - mean_x * mean_x
        if var <= 1e-9:  # one batch size seen so far: all of it is fixed cost
            self.a, self.b = mean_y, 0.0
            return
        self.b = max(0.0, (self.sxy / self.w - mean_x * mean_y) / var)
        self.a = max(0.0, mean_y - self.b * mean_x)

    def coefficients(self) -> tuple[float, float]:
        """``(a, b)``: fixed cost per batch and cost per row, both at least 0."""
        return self.a, self.b

    def predict(self, rows: int) -> float:
        return self.a + self.b * rows


class _Pending:
    __slots__ = ("deadline", "enqueued", "future", "payload", "rows")

    def __init__(
        self,
        payload: Any,
        rows: int,
        deadline: float,
        future: asyncio.Future[Any],
        enqueued: float,
    ) -> None:
        self.payload, self.rows, self.deadline = payload, rows, deadline
        self.future, self.enqueued = future, enqueued


class Batcher:
    """One model's queue and its single batch worker (see the module docstring)."""

    def __init__(
        self,
        name: str,
        run_batch: RunBatch,
        policy: BatchPolicy | None = None,
        *,
        executor: ThreadPoolExecutor | None = None,
        on_batch: Callable[[int, float], None] | None = None,
        on_queue: Callable[[int], None] | None = None,
    ) -> None:
        self.name = name
        self.run_batch = run_batch
        self._coroutine = inspect.iscoroutinefunction(run_batch)
        self.policy = policy or BatchPolicy()
        self.latency = LatencyModel()
        self.on_batch = on_batch
        self.on_queue = on_queue
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix=f"batch-{name}")
        self._own_executor = executor is None
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._busy_until: float | None = None  # predicted end of the batches in flight
        self._in_flight = 0
        self._last_end = 0.0  # when the last batch finished (perf_counter)
        self._timer: asyncio.TimerHandle | None = None
        self._last_arrival = 0.0
        self._gap = math.inf  # smoothed time between arrivals
        self.batch_sizes: dict[int, int] = {}  # rows -> batches, for reports

    # -- admission ---------------------------------------------------------------------------
    def submit(
        self, payload: Any, rows: int, deadline_s: float | None = None
    ) -> asyncio.Future[Any]:
        """Queue one request; its future resolves to its own result.

        Raises ``UnavailableError`` at once when the request cannot be answered in time.
        """
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        budget = self.policy.slo_s if deadline_s is None else deadline_s
        if self._queued_rows + rows > self.policy.max_queue_rows and self._queue:
            self._reject("queue_full", now, rows)
        backlog = self._backlog_s(now) if self._busy_until is not None or self._queue else 0.0
        if backlog > 0:  # an idle model always takes a request: it is how it learns its speed
            wait = backlog + self.latency.predict(min(rows, self.policy.max_batch_rows))
            if wait > budget:
                self._reject("deadline", now, rows, budget=budget, predicted=wait)
        if self._last_arrival:
            gap = now - self._last_arrival
            self._gap = gap if self._gap == math.inf else 0.5 * (self._gap + gap)
        self._last_arrival = now
        pending = _Pending(payload, rows, now + budget, loop.create_future(), now)
        self._queue.append(pending)
        self._queued_rows += rows
        if self.on_queue is not None:
            self.on_queue(self._queued_rows)
        if self._in_flight < self.policy.max_in_flight:
            if self._timer is not None and self._queued_rows >= self._hold_target():
                self._timer.cancel()
                self._timer = None
            self._schedule(loop, now)
        return pending.future

    def _hold_target(self) -> float:
        gap = self._gap
        if gap <= 0 or gap == math.inf:
            return 0.0
        return min(self.policy.max_batch_rows, self.latency.a / gap)

    def _backlog_s(self, now: float) -> float:
        """Predicted time until work queued now would be finished."""
        running = max(0.0, self._busy_until - now) if self._busy_until is not None else 0.0
        if not self._queued_rows:
            return running
        full, rest = divmod(self._queued_rows, self.policy.max_batch_rows)
        queued = full * self.latency.predict(self.policy.max_batch_rows)
        if rest:
            queued += self.latency.predict(rest)
        return running + queued

    def _reject(self, reason: str, now: float, rows: int, **details: Any) -> None:
        retry = max(0.05, self._backlog_s(now))
        message = {
            "queue_full": f"Model {self.name!r} has {self._queued_rows} rows queued (the limit is "
            f"{self.policy.max_queue_rows}); try again in {retry:.2f} s.",
            "deadline": f"Model {self.name!r} cannot answer within the deadline of "
            f"{details.get('budget', 0) * 1000:.0f} ms (predicted "
            f"{details.get('predicted', 0) * 1000:.0f} ms); try again in {retry:.2f} s, or send "
            "a longer deadline in X-Deadline-Ms.",
            "expired": f"The request waited past its deadline for model {self.name!r}; try again "
            f"in {retry:.2f} s.",
        }[reason]
        raise UnavailableError(
            message, retry_after_s=round(retry, 3), reason=reason, model=self.name
        )

    # -- dispatch ----------------------------------------------------------------------------
    def _schedule(self, loop: asyncio.AbstractEventLoop, now: float) -> None:
        """Dispatch now, hold briefly if more rows are on their way, or leave the queue to the
        end of a batch in flight."""
        if self._timer is not None or not self._queue:
            return
        hold = 0.0
        policy = self.policy
        if self._in_flight:
            # Pipelining: hand the next batch over while the last computes, once it is about as
            # big as what arrives during the model's fixed cost; a smaller one waits for the end
            # of the batch in flight (whose completion schedules again).
            if self._in_flight < policy.max_in_flight and self._queued_rows >= min(
                policy.max_batch_rows, max(1.0, self._hold_target())
            ):
                self._dispatch(loop)
            return
        # Holding pays only when requests arrive faster than the model's fixed cost per batch:
        # hold until about as many rows wait as arrive during that fixed cost, but at most
        # max_wait_s, and never past what the oldest request's deadline allows.
        if (
            policy.max_wait_s > 0
            and self._gap < policy.max_wait_s
            and self._queued_rows < min(policy.max_batch_rows, self._hold_target())
        ):
            oldest = self._queue[0]
            slack = oldest.deadline - now - self.latency.predict(policy.max_batch_rows)
            hold = min(policy.max_wait_s - (now - oldest.enqueued), slack)
        if hold <= 0:
            self._dispatch(loop)
        else:
            self._timer = loop.call_later(hold, self._on_timer, loop)

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if self._in_flight < self.policy.max_in_flight:
            self._dispatch(loop)

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = time.monotonic()
        batch: list[_Pending] = []
        rows = 0
        limit = self.policy.max_batch_rows
        queue = self._queue
        while queue and (not batch or rows + queue[0].rows <= limit):
            pending = queue.popleft()
            self._queued_rows -= pending.rows
            if pending.future.done():  # the client went away
                continue
            if pending.deadline < now:
                try:
                    self._reject("expired", now, pending.rows)
                except UnavailableError as exc:
                    pending.future.set_exception(exc)
                continue
            batch.append(pending)
            rows += pending.rows
        if self.on_queue is not None:
            self.on_queue(self._queued_rows)
        if not batch:
            if queue:
                self._dispatch(loop)
            return
        self._busy_until = max(now, self._busy_until or now) + self.latency.predict(rows)
        self._in_flight += 1
        started = time.perf_counter()
        payloads = [p.payload for p in batch]
        work: asyncio.Future[Sequence[Any]]
        if self._coroutine:
            work = asyncio.ensure_future(self.run_batch(payloads))  # type: ignore[arg-type]
        else:
            work = loop.run_in_executor(self._executor, self.run_batch, payloads)  # type: ignore[arg-type]
        work.add_done_callback(lambda done: self._finished(loop, batch, rows, started, done))

    def _finished(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[_Pending],
        rows: int,
        started: float,
        done: asyncio.Future[Sequence[Any]],
    ) -> None:
        self._in_flight -= 1
        if not self._in_flight:
            self._busy_until = None
        # A pipelined batch waited for the one before it: its own time starts when that ended.
        ended = time.perf_counter()
        seconds = ended - max(started, self._last_end)
        self._last_end = ended
        error = done.exception()
        if error is None:
            results = done.result()
            self.latency.observe(rows, seconds)
            self.batch_sizes[rows] = self.batch_sizes.get(rows, 0) + 1
            if self.on_batch is not None:
                self.on_batch(rows, seconds)
        for i, pending in enumerate(batch):
            if pending.future.done():
                continue
            if error is not None:
                pending.future.set_exception(error)
            elif isinstance(results[i], BaseException):
                pending.future.set_exception(results[i])
            else:
                pending.future.set_result(results[i])
        self._schedule(loop, time.monotonic())

    def queued_rows(self) -> int:
        return self._queued_rows

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._own_executor:
            self._executor.shutdown(wait=True)
