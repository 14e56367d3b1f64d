"""The serving side of the prediction log: a request's rows as records, written off the loop.

``PredictionWriter`` collects what each answered request hands over during one event-loop
turn; one writer thread turns it into ``PredictionRecord``s and spools them with one write,
and the turn's requests wait together until the spool says they are durable. (With model
processes, each process logs the rows it computed itself; see ``_child.py``.)
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from loopwise.serving.schema import Inputs, rows_of
from loopwise.store.predictions import PredictionRecord, PredictionSpool

__all__ = ["Logged", "PredictionWriter", "prediction_rows"]


def prediction_rows(
    inputs: Inputs, outputs: dict[str, np.ndarray[Any, Any]]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """A request's rows as plain values: ``(inputs, outputs)`` per row, for the log."""
    as_lists = {k: v.tolist() for k, v in outputs.items()}
    if isinstance(inputs, np.ndarray):
        values = inputs.tolist() if inputs.ndim > 1 else [[v] for v in inputs.tolist()]
        return [
            ({"input": row}, {k: v[i] for k, v in as_lists.items()}) for i, row in enumerate(values)
        ]
    columns = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in inputs.items()}
    count = rows_of(inputs)
    return [
        ({k: v[i] for k, v in columns.items()}, {k: v[i] for k, v in as_lists.items()})
        for i in range(count)
    ]


Logged = tuple[str, str, str, tuple[int, dict[str, np.ndarray[Any, Any]]], Inputs, int, float, bool]
"""What a request hands the log writer: deployment, model, request id, (version, outputs),
inputs, arrival (ms since the epoch), latency (ms) and whether a shadow version answered."""


class PredictionWriter:
    """The prediction log's writer: requests of one event-loop turn, spooled together.

    The event loop only collects what each request hands over; a single writer thread turns it
    into records, spools them with one write and waits until they are durable. The requests of
    a model batch finish in the same turn, so a turn's records share one write, one fsync and
    one wake-up of the loop — and the loop never blocks on the disk.
    """

    def __init__(self, spool: PredictionSpool, project: str) -> None:
        self.spool = spool
        self.project = project
        self.items: list[Logged] = []
        self.done: asyncio.Future[None] | None = None
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="prediction-log")
        self.pending: set[asyncio.Future[None]] = set()

    def add(self, item: Logged) -> asyncio.Future[None]:
        if self.done is None:
            loop = asyncio.get_running_loop()
            self.done = loop.create_future()
            loop.call_soon(self._flush, loop)
        self.items.append(item)
        return self.done

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        items, done = self.items, self.done
        self.items, self.done = [], None
        assert done is not None
        task = asyncio.ensure_future(self._spool(items, done))
        self.pending.add(task)  # keep a reference until it is done
        task.add_done_callback(self.pending.discard)

    async def _spool(self, items: list[Logged], done: asyncio.Future[None]) -> None:
        try:
            seq = await asyncio.get_running_loop().run_in_executor(self.writer, self._append, items)
            await self.spool.durable(seq)  # the spool's fsync thread; appends go on meanwhile
        except Exception as exc:  # every waiting request hears it
            if not done.done():
                done.set_exception(exc)
                done.exception()  # retrieved here too, in case every waiter left
            return
        if not done.done():
            done.set_result(None)

    def _append(self, items: list[Logged]) -> int:
        records: list[PredictionRecord] = []
        for deployment, model, request_id, answer, inputs, arrived_ms, latency_ms, shadow in items:
            version, outputs = answer
            rows = prediction_rows(inputs, outputs)
            many = len(rows) > 1
            records.extend(
                PredictionRecord(
                    project=self.project,
                    deployment=deployment,
                    request_id=f"{request_id}:{i}" if many else request_id,
                    model=model,
                    version=version,
                    timestamp_ms=arrived_ms,
                    latency_ms=latency_ms,
                    inputs=row_inputs,
                    outputs=row_outputs,
                    shadow=shadow,
                )
                for i, (row_inputs, row_outputs) in enumerate(rows)
            )
        return self.spool.append(records)

    def close(self) -> None:
        self.writer.shutdown(wait=True)
