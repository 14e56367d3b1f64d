"""A spool whose appends are acknowledged once durable, with fsyncs shared by many (group commit).

Records are framed as in the metric spool (``spool.frame``) and appended to per-process files
with one ``write`` each. A caller that needs a record on disk waits for its sequence number;
one flusher thread runs ``fdatasync`` for everyone waiting at that moment, so a thousand
requests a second cost tens of fsyncs, not a thousand. A drainer thread reads the files back
and hands batches to ``write_batch``, which must record, atomically with the batch, how far
the spool got (as the metric spool's ``write_spooled_metrics`` does). Files rotate when they
grow large, and each file is its own spool id, so a file is deleted once drained.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loopwise.errors import InvalidArgumentError, StoreError
from loopwise.store.spool import (
    REFUSED,
    SUFFIX,
    create_spool_file,
    dead_spools,
    frame,
    frames,
    replay_spool,
)

if TYPE_CHECKING:
    import asyncio

__all__ = ["Durability", "DurableSpool", "WritePayloads", "recover_durable_spools"]

log = logging.getLogger(__name__)

Durability = Literal["fsync", "write"]
WritePayloads = Callable[[Sequence[bytes], str, int], None]
"""``write_batch(payloads, spool_id, upto_seq)``: store them and record progress atomically."""

_SEQ = struct.Struct("<Q")
READ_BYTES = 8 * 2**20  # read back this much at a time: bounds the drainer's memory
MAX_PAYLOAD_BYTES = 4 * 2**20  # so a whole record always fits in one read


def _datasync(fd: int) -> None:
    # fdatasync flushes the data and the size of the file; macOS has only fsync.
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def _sync_directory(directory: Path) -> None:
    """Make a new file's name durable (its directory entry), not only its bytes."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _split(data: bytes | memoryview) -> tuple[list[tuple[int, bytes]], int]:
    """``([(seq, payload)], bytes consumed)`` of the whole records at the start of ``data``."""
    records = []
    consumed = 0
    for payload, end in frames(data):
        records.append((_SEQ.unpack_from(payload)[0], bytes(payload[_SEQ.size :])))
        consumed = end
    return records, consumed


@dataclass(eq=False)
class _File:
    """One spool file. Its records have consecutive sequence numbers from ``first_seq``."""

    spool_id: str
    path: Path
    fd: int
    first_seq: int
    last_seq: int = 0  # the last record written (first_seq - 1 while empty)
    size: int = 0  # bytes written
    drained_offset: int = 0  # bytes handed to write_batch
    synced_seq: int = 0  # the last record fdatasync'ed


@dataclass(eq=False)
class _LoopWaiters:
    """Coroutines of one event loop waiting for durability, as ``(seq, n, future)`` in a heap."""

    loop: asyncio.AbstractEventLoop
    heap: list[tuple[int, int, asyncio.Future[None]]] = field(default_factory=list)


class DurableSpool:
    """Per-process spool files with group commit and a background drainer."""

    RECORDS = "records"
    """What the records are, in messages (a subclass names its own)."""

    def __init__(
        self,
        directory: Path,
        write_batch: WritePayloads,
        forget: Callable[[str], None] | None = None,
        *,
        durability: Durability = "fsync",
        fsync_window_ms: float = 0.0,
        drain_interval_s: float = 2.0,
        max_file_bytes: int = 64 * 2**20,
        spool_prefix: str = "",
    ) -> None:
        self.directory = directory
        self.write_batch = write_batch
        self.forget = forget
        self.durability = durability
        self.fsync_window_ms = fsync_window_ms
        self.drain_interval_s = drain_interval_s
        self.max_file_bytes = max_file_bytes
        self.spool_prefix = spool_prefix
        # Runtime state, set by open().
        self._lock = threading.Lock()  # the files, sequence numbers and waiters
        self._flush_wanted = threading.Condition(self._lock)
        self._durable = threading.Condition(self._lock)
        self._sync_lock = threading.Lock()  # an fd is never closed while it is being synced
        self._drain_lock = threading.Lock()  # one drain at a time
        self._drain_wake = threading.Event()
        self._files: list[_File] = []
        self._loops: dict[asyncio.AbstractEventLoop, _LoopWaiters] = {}
        self._tiebreak = itertools.count()
        self._last_seq = 0
        self._durable_seq = 0
        self._wanted_seq = 0
        self._dir_dirty = False
        self._error: StoreError | None = None
        self._stopping = False
        self._closing = False
        self._pid = -1
        self._threads: list[threading.Thread] = []
        self.fsync_count = 0
        """fdatasync calls made so far (each covers every record written before it)."""
        self.drain_error: BaseException | None = None
        """The last error of a background drain; records stay spooled and are retried."""

    # -- lifecycle ---------------------------------------------------------------------------
    def _check_options(self) -> None:
        if self.durability not in ("fsync", "write"):
            raise InvalidArgumentError(
                f"Expected durability 'fsync' (survives power loss) or 'write' (survives a "
                f"killed process), got {self.durability!r}.",
                parameter="durability",
            )
        for name, low in (
            ("fsync_window_ms", 0.0),
            ("drain_interval_s", 0.001),
            ("max_file_bytes", 1.0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= low:
                raise InvalidArgumentError(
                    f"Expected {name} to be a number >= {low:g}, got {value!r}.", parameter=name
                )

    def open(self) -> DurableSpool:
        """Create this process's spool file and start the flusher and drainer threads."""
        self._check_options()
        if self._pid == os.getpid():
            return self
        with self._lock:
            self._files = []
            self._loops = {}
            self._last_seq = self._durable_seq = self._wanted_seq = 0
            self._error = None
            self._stopping = self._closing = False
            self._new_file()
            self._pid = os.getpid()
        if self.durability == "fsync":
            _sync_directory(self.directory)
            self._dir_dirty = False
        self._threads = [
            threading.Thread(target=self._drain_forever, name="loopwise-spool-drain", daemon=True)
        ]
        if self.durability == "fsync":
            self._threads.append(
                threading.Thread(
                    target=self._flush_forever, name="loopwise-spool-fsync", daemon=True
                )
            )
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        """Make everything durable, drain what the store accepts, and stop the threads.

        What the store refuses stays in the spool files and is replayed on the next open.
        """
        if self._pid != os.getpid():
            return
        with self._lock:
            self._stopping = self._closing = True
            self._flush_wanted.notify_all()
        self._drain_wake.set()
        for thread in self._threads:
            thread.join()
        if self.durability == "fsync" and self._error is None:
            self._sync()
        try:
            self._drain(final=True)
        except Exception as exc:
            log.warning("Closing with records still spooled in %s (%s).", self.directory, exc)
        with self._sync_lock, self._lock:
            for f in self._files:
                os.close(f.fd)  # releases the lock: the next open replays what is left
            self._files = []
            self._pid = -1

    # -- append ------------------------------------------------------------------------------
    def _new_file(self) -> _File:
        """Start a new file (the lock is held)."""
        spool_id, fd = create_spool_file(self.directory, self.spool_prefix)
        path = self.directory / f"{spool_id}.spool"
        f = _File(spool_id, path, fd, first_seq=self._last_seq + 1, last_seq=self._last_seq)
        f.synced_seq = self._last_seq
        self._files.append(f)
        self._dir_dirty = True
        return f

    def append_payloads(self, payloads: Sequence[bytes]) -> int:
        """Write ``payloads`` with one ``write``; returns the sequence number of the last.

        On return they survive the process being killed; in ``fsync`` mode, wait for
        :meth:`durable` (or :meth:`wait_durable`) before acknowledging them to anyone.
        """
        for payload in payloads:
            if len(payload) > MAX_PAYLOAD_BYTES:
                raise InvalidArgumentError(
                    f"Expected a record of at most {MAX_PAYLOAD_BYTES} bytes when encoded, got "
                    f"{len(payload)}. Log large inputs as artifacts and refer to them instead.",
                    parameter="records",
                )
        with self._lock:
            if self._pid != os.getpid() or self._closing:
                raise StoreError(
                    "The spool is not open in this process: call open() first (in each worker "
                    "process, after any fork), and append nothing after close().",
                )
            if self._error is not None:
                raise self._error
            first = self._last_seq + 1
            data = b"".join(
                frame(_SEQ.pack(seq) + payload) for seq, payload in enumerate(payloads, start=first)
            )
            if not data:
                return self._last_seq
            f = self._files[-1]
            if f.size and f.size + len(data) > self.max_file_bytes:
                f = self._new_file()
            self._write(f, data)
            self._last_seq = f.last_seq = first + len(payloads) - 1
            f.size += len(data)
            if self.durability == "write":
                self._durable_seq = self._last_seq
            if f.size - f.drained_offset >= READ_BYTES // 2:
                self._drain_wake.set()
            return self._last_seq

    def _write(self, f: _File, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:  # a regular file takes it all at once, short of a full disk
                view = view[os.write(f.fd, view) :]
        except OSError as exc:
            # Cut off what did get written, or the torn record would hide every later one.
            os.ftruncate(f.fd, f.size)
            raise StoreError(
                f"Could not write {self.RECORDS} to the spool in {self.directory}: {exc}. Free "
                "disk space there; nothing of this call was spooled.",
                path=str(f.path),
            ) from exc

    # -- durability --------------------------------------------------------------------------
    @property
    def last_seq(self) -> int:
        """The sequence number of the last record appended."""
        return self._last_seq

    @property
    def durable_seq(self) -> int:
        """Every record up to this sequence number is durable in the chosen mode."""
        return self._durable_seq

    def _want(self, seq: int) -> bool:
        """Ask the flusher for ``seq`` (the lock is held); False if it is durable already."""
        if self._error is not None:
            raise self._error
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= self._last_seq:
            raise InvalidArgumentError(
                f"Expected a sequence number returned by append (0-{self._last_seq}), got {seq!r}.",
                parameter="seq",
            )
        if seq <= self._durable_seq:
            return False
        if seq > self._wanted_seq:
            self._wanted_seq = seq
            self._flush_wanted.notify()
        return True

    def wait_durable(self, seq: int, timeout_s: float | None = None) -> None:
        """Block until record ``seq`` is durable (raises StoreError if it cannot be)."""
        if type(seq) is int and 0 <= seq <= self._durable_seq and self._error is None:
            return
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._lock:
            if not self._want(seq):
                return
            while self._durable_seq < seq:
                if self._error is not None:
                    raise self._error
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise StoreError(
                        f"Record {seq} was not made durable within {timeout_s} s: the disk "
                        f"under {self.directory} is too slow or stuck.",
                    )
                self._durable.wait(left)

    async def durable(self, seq: int) -> None:
        """Wait, without blocking the event loop, until record ``seq`` is durable."""
        if type(seq) is int and 0 <= seq <= self._durable_seq and self._error is None:
            return
        import asyncio  # here: the store imports this module without an event loop in sight

        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if not self._want(seq):
                return
            waiters = self._loops.get(loop)
            if waiters is None:
                waiters = self._loops[loop] = _LoopWaiters(loop)
            heapq.heappush(waiters.heap, (seq, next(self._tiebreak), future))
        await future

    def _release(self, waiters: _LoopWaiters) -> None:
        """On the waiters' loop: resolve every future whose record is durable now."""
        durable, error, heap = self._durable_seq, self._error, waiters.heap
        while heap and (error is not None or heap[0][0] <= durable):
            future = heapq.heappop(heap)[2]
            if not future.done():  # a cancelled request (the client left) is skipped
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(None)
        if not heap:
            with self._lock:
                if not heap and self._loops.get(waiters.loop) is waiters:
                    del self._loops[waiters.loop]

    def _announce(self) -> None:
        """Wake every waiter (the lock is held): threads now, loops through their queues."""
        self._durable.notify_all()
        for waiters in list(self._loops.values()):
            try:
                waiters.loop.call_soon_threadsafe(self._release, waiters)
            except RuntimeError:  # the loop is closed: nobody is left to wake
                del self._loops[waiters.loop]

    def _flush_forever(self) -> None:
        window_s = self.fsync_window_ms / 1000
        last_start = -window_s
        while True:
            with self._lock:
                while self._wanted_seq <= self._durable_seq and not self._stopping:
                    self._flush_wanted.wait()
                if self._wanted_seq <= self._durable_seq or self._error is not None:
                    return
            # At most one fsync per window: waiting lets later requests share this one.
            delay_s = last_start + window_s - time.monotonic()
            if delay_s > 0:
                time.sleep(delay_s)
            last_start = time.monotonic()
            self._sync()

    def sync(self) -> int:
        """Make every record appended so far durable now, in the calling thread; returns the
        durable sequence number (raises StoreError if the disk failed).

        For a caller that would only wait for the flusher anyway: one ``fdatasync`` here costs
        no thread hand-over. Running beside the flusher is safe; whichever syncs first covers
        the other's records.
        """
        if self.durability == "fsync" and self._durable_seq < self._last_seq:
            self._sync()
        if self._error is not None:
            raise self._error
        return self._durable_seq

    def _sync(self) -> None:
        """fdatasync every file with unsynced records, then announce the new durable point."""
        with self._lock:
            target = self._last_seq
            todo = [(f, f.last_seq) for f in self._files if f.synced_seq < f.last_seq]
            sync_dir, self._dir_dirty = self._dir_dirty, False
        try:
            with self._sync_lock:
                if sync_dir:
                    _sync_directory(self.directory)
                for f, upto in todo:
                    if f.fd >= 0:  # not retired since the snapshot
                        _datasync(f.fd)
                    f.synced_seq = upto
        except OSError as exc:
            # After a failed fsync the kernel may have dropped the dirty pages: retrying could
            # "succeed" without the data. Refuse everything from now on instead.
            error = StoreError(
                f"Could not make {self.RECORDS} durable in {self.directory} ({exc}). Nothing "
                "more can be acknowledged until the process restarts; check the disk.",
                path=str(self.directory),
            )
            with self._lock:
                self._error = error
                self._announce()
            return
        with self._lock:
            self.fsync_count += 1
            self._durable_seq = max(self._durable_seq, target)
            self._announce()

    # -- drain -------------------------------------------------------------------------------
    def _drain_forever(self) -> None:
        while not self._stopping:
            self._drain_wake.wait(self.drain_interval_s)
            self._drain_wake.clear()
            if self._stopping:
                return
            try:
                self._drain()
                self.drain_error = None
            except Exception as exc:  # keep the spool: the next drain or open retries
                self.drain_error = exc
                log.warning(
                    "Could not write predictions to the store yet (%s); they stay spooled.", exc
                )

    def drain(self) -> None:
        """Hand every record appended so far to ``write_batch`` now (raises if it fails)."""
        if self._pid == os.getpid():
            self._drain()

    def _drain(self, final: bool = False) -> None:
        with self._drain_lock:
            with self._lock:
                files = [(f, f.size) for f in self._files]
            for f, size in files:
                while f.drained_offset < size:
                    chunk = os.pread(
                        f.fd, min(size - f.drained_offset, READ_BYTES), f.drained_offset
                    )
                    records, consumed = _split(chunk)
                    if not records:
                        raise StoreError(
                            f"The spool file {f.path} is damaged at byte {f.drained_offset}; "
                            "records after it cannot be read back.",
                            path=str(f.path),
                        )
                    self.write_batch([p for _, p in records], f.spool_id, records[-1][0])
                    f.drained_offset += consumed
                self._retire_if_done(f, final)

    def _retire_if_done(self, f: _File, final: bool) -> None:
        """Delete a drained file that takes no more appends (once synced, in fsync mode)."""
        with self._sync_lock, self._lock:
            if f.drained_offset < f.size or (f is self._files[-1] and not final):
                return
            if self.durability == "fsync" and f.synced_seq < f.last_seq:
                # A waiter may be owed this file's fsync: ask for it, retire it next time.
                if f.last_seq > self._wanted_seq:
                    self._wanted_seq = f.last_seq
                    self._flush_wanted.notify()
                return
            f.path.unlink(missing_ok=True)
            os.close(f.fd)
            f.fd = -1
            self._files.remove(f)
        if self.forget is not None:
            self.forget(f.spool_id)  # its progress record is not needed once the file is gone


def _parse(payload: memoryview) -> tuple[int, bytes]:
    if len(payload) < _SEQ.size:
        raise ValueError("a record shorter than its sequence number")
    return _SEQ.unpack_from(payload)[0], bytes(payload[_SEQ.size :])


def _describe(payload: bytes) -> dict[str, Any]:
    return {"record": payload.decode("utf-8", "replace")}


def recover_durable_spools(
    directory: Path,
    write_batch: WritePayloads,
    committed_seq: Callable[[str], int],
    forget: Callable[[str], None] | None = None,
    max_batch_bytes: int = READ_BYTES,
    keep_refused: bool = False,
) -> int:
    """Replay the files of processes that died before draining them; returns records replayed.

    Damaged bytes are skipped and the records after them still replayed; records the store
    refuses are set aside in ``refused/`` (framed as in a spool, listed with the reason in
    ``refused/<spool id>.jsonl``). With ``keep_refused`` they go back into the spool folder
    instead, for a later replay (e.g. once their project exists). A file the store cannot take
    now (unreachable, busy) is kept whole: with ``keep_refused`` that is logged, without it the
    error is raised.
    """
    replayed = 0
    with closing(dead_spools(directory)) as spools:  # unlocks at once, even on an error
        for spool_id, path, data in spools:
            aside = directory / REFUSED / f"{spool_id}{SUFFIX}"
            if keep_refused and not aside.exists():
                # The report of an earlier replay of records kept for later: replaced by this one.
                (directory / REFUSED / f"{spool_id}.jsonl").unlink(missing_ok=True)
            try:
                result = replay_spool(
                    directory,
                    spool_id,
                    data,
                    parse=_parse,
                    write=write_batch,
                    done=committed_seq(spool_id),
                    describe=_describe,
                    min_payload=_SEQ.size,
                    max_batch_bytes=max_batch_bytes,
                )
            except Exception as exc:
                if not keep_refused:
                    raise
                log.warning("Could not replay the spool %s yet (%s); it is kept.", path, exc)
                continue
            replayed += result.written
            path.unlink(missing_ok=True)
            if forget is not None:
                forget(spool_id)
            if result.refused and keep_refused:
                os.replace(aside, path)  # progress forgotten: replayed from its start next time
            if result.report is not None:
                kept = (
                    f"kept in {path} for the next open" if keep_refused else f"set aside in {aside}"
                )
                log.warning("%s", result.warning("records", path, kept))
    return replayed
