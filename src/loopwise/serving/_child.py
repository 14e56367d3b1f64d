"""The body of a model process (``serving/workers.py``): receive the model, compute batches.

Run as ``python -m loopwise.serving._child FD``, FD being its end of a socket pair. Messages
both ways are a length (``workers.FRAME``) and a pickle, from the server that started it.

Each request gets one reply, ``("reply", value, seq, durable_seq)``: the value, the spool
sequence number of the rows it logged (0 if none) and how far the spool is durable now. With
``fsync`` durability and no fsync window, the process syncs the spool itself before it replies
(one ``fdatasync``, a fraction of a millisecond on a local disk, and no hand-over between
threads, which costs more under load), so the reply says the rows are durable. Otherwise, when
the rows are not durable yet, a notifier thread sends ``("durable", durable_seq)`` once the
spool's group commit covers them, so that the next batch computes while this one's fsync (or
window) runs.
"""

from __future__ import annotations

import pickle
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from loopwise.errors import LoopwiseError, StoreError
from loopwise.registry import LoadedModel
from loopwise.serving.compute import Outputs, compute, model_error
from loopwise.serving.schema import InputSchema, accepts_arrays, ignore_feature_name_warning
from loopwise.serving.workers import FRAME, LogTarget


def _read(sock: socket.socket, size: int) -> bytes | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            return None
        got += n
    return bytes(buffer)


class _Log:
    """This process's prediction log: its own spool on the server's store."""

    def __init__(self, target: LogTarget) -> None:
        from loopwise.store import open_store
        from loopwise.store.predictions import PredictionSpool
        from loopwise.store.remote import RemoteStore

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
        from loopwise.serving.predictions import prediction_rows
        from loopwise.store.predictions import PredictionRecord, Row

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
                send(("durable_error", _log_error(exc).to_dict()))
                return
            told = self.spool.durable_seq
            send(("durable", told))

    def close(self) -> None:
        with self._wanted:
            self._closing = True
            self._wanted.notify()
        self.spool.close()
        self.store.close()


def _log_error(exc: Exception) -> LoopwiseError:
    if isinstance(exc, LoopwiseError):
        return exc
    return StoreError(f"The prediction log could not take these rows ({exc!r}).")


def serve(sock: socket.socket) -> None:
    model: LoadedModel | None = None
    log: _Log | None = None
    sending = threading.Lock()  # the notifier thread sends too

    def send(message: Any) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with sending:
            sock.sendall(FRAME.pack(len(data)) + data)

    try:
        while True:
            header = _read(sock, FRAME.size)
            body = _read(sock, FRAME.unpack(header)[0]) if header is not None else None
            if body is None:  # the server closed its end
                return
            kind, value = pickle.loads(body)
            reply: Any = None
            seq = 0
            if kind == "log":
                log = _Log(value)
                log.start_notifier(send)
            elif kind == "model":
                model = value
                assert model is not None
                schema = InputSchema(model.signature)
                reply = accepts_arrays(model.model, schema)
                if reply:
                    ignore_feature_name_warning()
                if log is not None:
                    log.names = schema.names
            else:
                assert model is not None, "a batch before the model"
                X, wanted, log_rows = value
                try:
                    reply = compute(model, X, wanted)
                except Exception as exc:
                    reply = model_error(exc).to_dict()
                else:
                    if log is not None and log_rows:
                        try:
                            seq = log.rows(
                                X, reply, model.version.version, model.version.name, log_rows
                            )
                            if log.inline_sync:
                                log.spool.sync()
                        except Exception as exc:
                            reply = _log_error(exc).to_dict()
            durable = log.spool.durable_seq if log is not None else 0
            send(("reply", reply, seq, durable))
            if seq > durable:
                assert log is not None
                log.notify(seq)
    finally:
        if log is not None:
            log.close()


if __name__ == "__main__":
    # The log's fsync and drain threads share the GIL with the computing thread: hand it over
    # within 0.5 ms, not the default 5 ms that a blocked write() would otherwise wait for.
    sys.setswitchinterval(0.0005)
    serve(socket.socket(fileno=int(sys.argv[1])))
