"""The body of a model process (``serving/workers.py``): receive the model, compute batches.

Run as ``python -m loopwise.serving._child FD``, FD being its end of a socket pair. Messages
both ways are a length (``workers.FRAME``) and a pickle, from the server that started it.
"""

from __future__ import annotations

import pickle
import socket
import sys
from typing import Any

from loopwise.registry import LoadedModel
from loopwise.serving.compute import compute, model_error
from loopwise.serving.schema import InputSchema, accepts_arrays, ignore_feature_name_warning
from loopwise.serving.workers import FRAME


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
    while True:
        header = _read(sock, FRAME.size)
        body = _read(sock, FRAME.unpack(header)[0]) if header is not None else None
        if body is None:  # the server closed its end
            return
        kind, value = pickle.loads(body)
        reply: Any
        if kind == "model":
            model = value
            assert model is not None
            reply = accepts_arrays(model.model, InputSchema(model.signature))
            if reply:
                ignore_feature_name_warning()
        else:
            assert model is not None, "a batch before the model"
            X, wanted = value
            try:
                reply = compute(model, X, wanted)
            except Exception as exc:
                reply = model_error(exc).to_dict()
        data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        sock.sendall(FRAME.pack(len(data)) + data)


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
