"""A model process's prediction log (``serving/_child.py``): its own spool on the server's store.

A model process imports this module only once it is told to log (``LogTarget``): one that
does not log needs neither the spool nor a store backend.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from loopwise.serving.compute import Outputs
from loopwise.serving.predictions import prediction_rows
from loopwise.serving.workers import LogTarget, log_error
from loopwise.store import open_store
from loopwise.store.predictions import PredictionRecord, PredictionSpool, Row
from loopwise.store.remote import RemoteStore

__all__ = ["ProcessLog"]


class ProcessLog:
    """This process's prediction log: its own spool on the server's store."""

    def __init__(self, target: LogTarget) -> None:
        self.target = target
        self.names: list[str] = []  # the model's columns, for logging an array's rows
        self.store = (
            RemoteStore(target.uri, target.token).open() if target.token else open_store(target.uri)
        )
        self.spool = PredictionSpool(
            self.store,
            directory=Path(target.spool_dir),
            durability=target.durability,  # type: ignore[arg-type]
            fsync_window_ms=target.fsync_window_ms,
        ).open()
        # Sync before replying, unless a window asks fsyncs to wait for more rows.
        self.inline_sync = target.durability == "fsync" and not target.fsync_window_ms
        self._wanted = threading.Condition()  # the highest seq the server waits for
        self._wanted_seq = 0
        self._closing = False

    def rows(
        self, X: Any, outputs: Outputs, version: int, model: str, log_rows: list[tuple[Any, int]]
    ) -> int:
        """Spool the rows of one batch; their sequence number (durable later, see ``notify``)."""
        columns: Any = X
        if isinstance(X, np.ndarray) and X.ndim == 2 and self.names:
            columns = {name: X[:, j] for j, name in enumerate(self.names)}
        elif not isinstance(X, np.ndarray):
            columns = {str(c): X[c].to_numpy() for c in X.columns}
        every = prediction_rows(columns, outputs)
        now = time.perf_counter()
        rows: list[Row] = []
        start = 0
        for (request_id, arrived_ms, started), count in log_rows:
            latency_ms = (now - started) * 1000
            for i in range(count):
                row_inputs, row_outputs = every[start + i]
                rows.append(
                    (
                        request_id if count == 1 else f"{request_id}:{i}",
                        arrived_ms,
                        latency_ms,
                        row_inputs,
                        row_outputs,
                    )
                )
            start += count
        shared = PredictionRecord(
            project=self.target.project,
            deployment=self.target.deployment,
            request_id="-",
            model=model,
            version=version,
            timestamp_ms=0,
            latency_ms=0.0,
            inputs={},
            outputs={},
            shadow=self.target.shadow,
        )
        return self.spool.append_batch(shared, rows)

    def notify(self, seq: int) -> None:
        """Have the notifier tell the server once ``seq`` is durable."""
        with self._wanted:
            self._wanted_seq = max(self._wanted_seq, seq)
            self._wanted.notify()

    def start_notifier(self, send: Any) -> None:
        self._notifier = threading.Thread(
            target=self._notify_loop, args=(send,), name="loopwise-log-notifier", daemon=True
        )
        self._notifier.start()

    def _notify_loop(self, send: Any) -> None:
        told = 0
        while True:
            with self._wanted:
                while self._wanted_seq <= told and not self._closing:
                    self._wanted.wait()
                if self._closing:
                    return
                seq = self._wanted_seq
            try:
                self.spool.wait_durable(seq)
            except Exception as exc:  # the disk failed: the server fails the waiting requests
                send(("durable_error", log_error(exc).to_dict()))
                return
            told = self.spool.durable_seq
            send(("durable", told))

    def close(self) -> None:
        with self._wanted:
            self._closing = True
            self._wanted.notify()
        self.spool.close()
        self.store.close()
