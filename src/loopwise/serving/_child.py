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
from typing import TYPE_CHECKING, Any

from loopwise.registry import LoadedModel
from loopwise.serving.compute import compute, model_error
from loopwise.serving.schema import InputSchema, accepts_arrays, ignore_feature_name_warning
from loopwise.serving.workers import FRAME, log_error

if TYPE_CHECKING:
    from loopwise.serving._child_log import ProcessLog


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


def serve(sock: socket.socket) -> None:
    model: LoadedModel | None = None
    log: ProcessLog | None = None
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
                # only a process that logs needs the spool and a store backend (SQLAlchemy, httpx)
                from loopwise.serving._child_log import ProcessLog

                log = ProcessLog(value)
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
                            reply = log_error(exc).to_dict()
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
