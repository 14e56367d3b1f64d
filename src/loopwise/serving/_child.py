"""The body of a model process (``serving/workers.py``): receive the model, compute batches.

Run as ``python -m loopwise.serving._child FD``, FD being its end of a socket pair. Messages
both ways are a length (``workers.FRAME``) and a pickle, from the server that started it.
"""

from __future__ import annotations

import pickle
import socket
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

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

    def rows(
        self, X: Any, outputs: Outputs, version: int, model: str, log_rows: list[tuple[Any, int]]
    ) -> None:
        from loopwise.serving.predictions import prediction_rows
        from loopwise.store.predictions import PredictionRecord

        columns: Any = X
        if isinstance(X, np.ndarray) and X.ndim == 2 and self.names:
            columns = {name: X[:, j] for j, name in enumerate(self.names)}
        elif not isinstance(X, np.ndarray):
            columns = {str(c): X[c].to_numpy() for c in X.columns}
        every = prediction_rows(columns, outputs)
        now = time.perf_counter()
        records = []
        start = 0
        for (request_id, arrived_ms, started), count in log_rows:
            for i in range(count):
                row_inputs, row_outputs = every[start + i]
                records.append(
                    PredictionRecord(
                        project=self.target.project,
                        deployment=self.target.deployment,
                        request_id=request_id if count == 1 else f"{request_id}:{i}",
                        model=model,
                        version=version,
                        timestamp_ms=arrived_ms,
                        latency_ms=(now - started) * 1000,
                        inputs=row_inputs,
                        outputs=row_outputs,
                    )
                )
            start += count
        self.spool.wait_durable(self.spool.append(records))

    def close(self) -> None:
        self.spool.close()
        self.store.close()


def serve(sock: socket.socket) -> None:
    model: LoadedModel | None = None
    log: _Log | None = None
    try:
        while True:
            header = _read(sock, FRAME.size)
            body = _read(sock, FRAME.unpack(header)[0]) if header is not None else None
            if body is None:  # the server closed its end
                return
            kind, value = pickle.loads(body)
            reply: Any = None
            if kind == "log":
                log = _Log(value)
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
                    if log is not None and log_rows:
                        log.rows(X, reply, model.version.version, model.version.name, log_rows)
                except Exception as exc:
                    reply = model_error(exc).to_dict()
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
            sock.sendall(FRAME.pack(len(data)) + data)
    finally:
        if log is not None:
            log.close()


if __name__ == "__main__":
    # The log's fsync and drain threads share the GIL with the computing thread: hand it over
    # within 0.5 ms, not the default 5 ms that a blocked write() would otherwise wait for.
    sys.setswitchinterval(0.0005)
    serve(socket.socket(fileno=int(sys.argv[1])))
