"""Model processes: a served model computing in its own process, beside the event loop.

A Python model's own overhead (scikit-learn's input validation, a loop over trees) holds the
GIL; in the server's process it competes with the event loop that parses requests, and each
hand-over between the two threads can wait for the interpreter's switch interval. With
``processes=True`` each served model computes in a child process instead. The event loop
itself writes each batch's checked inputs to the child over a socket and awaits the results, so
no thread of the server's waits for the GIL to hand a batch over. The child receives the model,
pickled, before its first batch and whenever the served version changes (a hot swap reaches
the child with the next batch). A child that dies is started again for the next batch; the
batch it was computing fails with 503.

The child is a fresh interpreter (``python -m loopwise.serving._child``), not a fork of the
server and not multiprocessing's spawn (which would import the server's ``__main__`` again).
"""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from loopwise.errors import UnavailableError, error_from_dict
from loopwise.registry import LoadedModel
from loopwise.serving.compute import Outputs

__all__ = ["FRAME", "LogTarget", "ModelProcess"]

FRAME = struct.Struct("!Q")
"""Each message on the socket: its length, then a pickle."""

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Thread pools of the numeric libraries. A model process computes with ``threads`` threads
(1 by default): batching already gives each call many rows, and idle OpenMP threads that spin
between calls would take CPU from the server's event loop."""


@dataclass(frozen=True)
class LogTarget:
    """Where a model process logs the rows it computes: the store (by URI and token), the
    project and deployment, and the spool's folder and durability."""

    uri: str
    token: str | None
    project: str
    deployment: str
    spool_dir: str
    durability: str
    fsync_window_ms: float


class ModelProcess:
    """The child process one served model computes in (see the module docstring)."""

    def __init__(self, name: str, threads: int = 1, log: LogTarget | None = None) -> None:
        self.name = name
        self.threads = threads
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._model: LoadedModel | None = None
        self._as_array = False
        self._lock: asyncio.Lock | None = None

    async def _start(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        for variable in _THREAD_VARIABLES:  # the user's own setting wins
            env.setdefault(variable, str(self.threads))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "loopwise.serving._child", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            env=env,
        )
        theirs.close()
        self._reader, self._writer = await asyncio.open_unix_connection(sock=ours, limit=2**31)
        self._model = None
        return self._reader, self._writer

    async def load(self, model: LoadedModel) -> bool:
        """Make sure the process runs and holds ``model``; whether it takes 2-D arrays.

        The first call starts the process; a new version (a hot swap) is sent once.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._stop_process()
                await self._start()
                if self.log is not None:  # the process opens the store and its own spool
                    await self._call(("log", self.log), pickle_in_thread=True)
            if self._model is not model:
                self._model = None
                self._as_array = bool(await self._call(("model", model), pickle_in_thread=True))
                self._model = model
            return self._as_array

    async def prepare(self, model: LoadedModel) -> None:
        """Start the process and hand it the model now, rather than with the first batch."""
        await self.load(model)

    async def compute(
        self,
        X: Any,
        wanted: set[str] | frozenset[str],
        log_rows: list[tuple[Any, int]] | None = None,
    ) -> Outputs:
        """The outputs for one joined input (see ``compute.compute``), computed in the child.

        With ``log_rows`` (``((request_id, arrived_ms, started), rows)`` per request, in the
        joined order) the child also spools those rows to the prediction log and answers only
        once they are durable. Raises the model's complaint as a ``LoopwiseError``, or
        ``UnavailableError`` when the process died (it starts again on the next ``load``).
        """
        assert self._lock is not None, "load() first"
        async with self._lock:
            reply = await self._call(("compute", (X, frozenset(wanted), log_rows)))
        if isinstance(reply, dict) and "error" in reply:
            raise error_from_dict(reply, 400)
        outputs: Outputs = reply
        return outputs

    async def _call(self, message: Any, pickle_in_thread: bool = False) -> Any:
        if self._reader is None or self._writer is None:
            raise self._died(ConnectionResetError("the model process is not running"))
        try:
            if pickle_in_thread:  # a model can take a while to pickle: keep the loop free
                data = await asyncio.to_thread(pickle.dumps, message, pickle.HIGHEST_PROTOCOL)
            else:
                data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
            self._writer.write(FRAME.pack(len(data)) + data)
            (size,) = FRAME.unpack(await self._reader.readexactly(FRAME.size))
            return pickle.loads(await self._reader.readexactly(size))
        except (EOFError, OSError, asyncio.IncompleteReadError) as exc:
            raise self._died(exc) from exc

    def _died(self, exc: BaseException) -> UnavailableError:
        self._stop_process()
        return UnavailableError(
            f"The process computing model {self.name!r} stopped ({exc!r}); it starts again for "
            "the next request.",
            retry_after_s=1.0,
            model=self.name,
        )

    def _stop_process(self) -> None:
        if self._writer is not None:
            self._writer.close()
        process = self._process
        if process is not None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._process, self._reader, self._writer, self._model = None, None, None, None

    def close(self) -> None:
        self._stop_process()
