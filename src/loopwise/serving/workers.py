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

Batches pipeline: the next one may be sent while the last computes (the batcher's
``max_in_flight``); the child takes them in order and the replies come back in order.

With a prediction log, the child spools each batch's rows and replies with the outputs, the
rows' sequence number and how far its spool is durable. With fsync and no window it syncs
before replying, so the answer is durable on arrival; otherwise it tells the server separately
when the spool's group commit has made the rows durable (``_Channel``), computing the next
batch meanwhile. The response waits for durability either way.

The child is a fresh interpreter (``python -m loopwise.serving._child``), not a fork of the
server and not multiprocessing's spawn (which would import the server's ``__main__`` again).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import os
import pickle
import socket
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loopwise.errors import LoopwiseError, StoreError, UnavailableError, error_from_dict
from loopwise.registry import LoadedModel
from loopwise.serving.compute import Outputs

__all__ = ["FRAME", "LogTarget", "ModelProcess", "Receipt", "log_error"]

FRAME = struct.Struct("!Q")
"""Each message on the socket: its length, then a pickle."""

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Thread pools of the numeric libraries. A model process computes with ``threads`` threads
(1 by default): batching already gives each call many rows, and idle OpenMP threads that spin
between calls would take CPU from the server's event loop."""


@dataclass(frozen=True)
class LogTarget:
    """Where a model process logs the rows it computes: the store (by URI and token), the
    project and deployment, the spool's folder and durability, and whether the process
    computes a deployment's shadow version (its rows are logged with ``shadow=True``)."""

    uri: str
    token: str | None
    project: str
    deployment: str
    spool_dir: str
    durability: str
    fsync_window_ms: float
    shadow: bool = False


def log_error(exc: Exception) -> LoopwiseError:
    """The error a model process reports when its prediction log cannot take a batch's rows."""
    if isinstance(exc, LoopwiseError):
        return exc
    return StoreError(f"The prediction log could not take these rows ({exc!r}).")


class _Channel:
    """The socket to one model process: requests go out in order, a reader task routes the
    replies back to them and tracks how far the process's prediction spool is durable."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        control: socket.socket,
        on_lost: Callable[[_Channel, BaseException], LoopwiseError],
    ) -> None:
        self.writer = writer
        self.control = control  # a duplicate of the transport's socket, to shut it down at once
        self.replies: deque[asyncio.Future[Any]] = deque()
        self.waiters: list[tuple[int, int, asyncio.Future[None]]] = []  # heap by seq
        self.tiebreak = itertools.count()
        self.durable_seq = 0
        self.error: LoopwiseError | None = None  # no more replies: every request fails with it
        self.log_error: LoopwiseError | None = None  # the spool failed: durability waits fail
        self.on_lost = on_lost
        self.task = asyncio.ensure_future(self._read(reader))

    def request(self, data: bytes) -> asyncio.Future[Any]:
        if self.error is not None:
            raise self.error
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.replies.append(future)
        self.writer.write(FRAME.pack(len(data)) + data)
        return future

    async def durable(self, seq: int) -> None:
        if seq <= self.durable_seq:
            return
        error = self.log_error or self.error
        if error is not None:
            raise error
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self.waiters, (seq, next(self.tiebreak), future))
        await future

    def _advance(self, seq: int) -> None:
        self.durable_seq = max(self.durable_seq, seq)
        waiters = self.waiters
        while waiters and waiters[0][0] <= self.durable_seq:
            future = heapq.heappop(waiters)[2]
            if not future.done():
                future.set_result(None)

    def _fail_waiters(self, error: LoopwiseError) -> None:
        for _, _, future in self.waiters:
            if not future.done():
                future.set_exception(error)
        self.waiters.clear()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                (size,) = FRAME.unpack(await reader.readexactly(FRAME.size))
                message = pickle.loads(await reader.readexactly(size))
                kind = message[0]
                if kind == "reply":
                    _, value, seq, durable = message
                    self._advance(durable)
                    future = self.replies.popleft()
                    if not future.done():
                        future.set_result((value, seq))
                elif kind == "durable":
                    self._advance(message[1])
                else:  # "durable_error": the spool cannot make rows durable any more
                    self.log_error = error_from_dict(message[1], 500)
                    self._fail_waiters(self.log_error)
        except (EOFError, OSError, asyncio.IncompleteReadError) as exc:
            self.error = self.on_lost(self, exc)
        except asyncio.CancelledError:
            self.error = UnavailableError("The model process was stopped.", retry_after_s=1.0)
        except BaseException as exc:  # a reply that does not unpickle: treat as a lost process
            self.error = self.on_lost(self, exc)
        for future in self.replies:
            if not future.done():
                future.set_exception(self.error)
        self.replies.clear()
        self._fail_waiters(self.error)

    def close(self) -> None:
        # The transport closes its socket only on a later loop turn: shut it down now, so that
        # a process the caller then waits for sees the end of its input and exits by itself.
        with contextlib.suppress(OSError):  # already gone
            self.control.shutdown(socket.SHUT_RDWR)
        self.control.close()
        self.writer.close()
        self.task.cancel()


@dataclass(frozen=True)
class Receipt:
    """Where a batch's logged rows stand: durable once its channel's spool passed ``seq``."""

    channel: _Channel
    seq: int

    async def durable(self) -> None:
        """Wait until the rows are durable; raises if the process or its disk failed first."""
        await self.channel.durable(self.seq)


class ModelProcess:
    """The child process one served model computes in (see the module docstring)."""

    def __init__(self, name: str, threads: int = 1, log: LogTarget | None = None) -> None:
        self.name = name
        self.threads = threads
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: _Channel | None = None
        self._model: LoadedModel | None = None
        self._as_array = False
        self._lock: asyncio.Lock | None = None

    async def _start(self) -> None:
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
        control = ours.dup()
        reader, writer = await asyncio.open_unix_connection(sock=ours, limit=2**31)
        self._channel = _Channel(reader, writer, control, self._lost)
        self._model = None

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
                answer, _ = await self._call(("model", model), pickle_in_thread=True)
                self._as_array = bool(answer)
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
    ) -> tuple[Outputs, Receipt]:
        """The outputs for one joined input (see ``compute.compute``), computed in the child.

        With ``log_rows`` (``((request_id, arrived_ms, started), rows)`` per request, in the
        joined order) the child also spools those rows to the prediction log; acknowledge them
        only after ``await receipt.durable()``. Raises the model's complaint as a
        ``LoopwiseError``, or ``UnavailableError`` when the process died (it starts again on
        the next ``load``).
        """
        assert self._lock is not None, "load() first"
        async with self._lock:  # held only to send: batches pipeline, replies come in order
            channel = self._channel
            reply_future = self._send(("compute", (X, frozenset(wanted), log_rows)))
        reply, seq = await reply_future  # a lost process fails it with UnavailableError
        if isinstance(reply, dict) and "error" in reply:
            raise error_from_dict(reply, 400)
        assert channel is not None
        outputs: Outputs = reply
        return outputs, Receipt(channel, seq)

    async def _call(self, message: Any, pickle_in_thread: bool = False) -> Any:
        """Send one request; its ``(value, seq)`` reply."""
        data = None
        if pickle_in_thread:  # a model can take a while to pickle: keep the loop free
            data = await asyncio.to_thread(pickle.dumps, message, pickle.HIGHEST_PROTOCOL)
        return await self._send(message, data)

    def _send(self, message: Any, data: bytes | None = None) -> asyncio.Future[Any]:
        """Send one request (pickled now unless ``data`` is given); the future of its reply."""
        channel = self._channel
        if channel is None:
            raise self._died(ConnectionResetError("the model process is not running"))
        if data is None:
            data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        try:
            return channel.request(data)
        except OSError as exc:
            raise self._died(exc) from exc

    def _lost(self, channel: _Channel, exc: BaseException) -> UnavailableError:
        """``channel`` broke: the error its waiting requests get (and stop its process)."""
        if channel is self._channel:
            return self._died(exc)
        return UnavailableError(
            f"The process computing model {self.name!r} stopped ({exc!r}).", retry_after_s=1.0
        )

    def _died(self, exc: BaseException) -> UnavailableError:
        self._stop_process()
        return UnavailableError(
            f"The process computing model {self.name!r} stopped ({exc!r}); it starts again for "
            "the next request.",
            retry_after_s=1.0,
            model=self.name,
        )

    def _stop_process(self) -> None:
        if self._channel is not None:
            self._channel.close()
        process = self._process
        if process is not None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._process, self._channel, self._model = None, None, None

    def close(self) -> None:
        self._stop_process()

    async def stop(self) -> None:
        """``close()`` without blocking the event loop while the process spools its last rows
        into the store and exits (a deployment's version leaving its plan)."""
        channel, process = self._channel, self._process
        self._process, self._channel, self._model = None, None, None
        if channel is not None:
            channel.close()
        if process is not None:
            try:
                await asyncio.to_thread(process.wait, 60)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
