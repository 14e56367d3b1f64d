"""A durable local spool for metric values: fast to append, replayed after a crash.

``append`` writes one framed record to a per-process file with a single ``write`` system call
(the bytes are then in the kernel and survive the process being killed) and returns; a
background thread moves batches to the database. The database records, in the same
transaction as each batch, how far the spool has been committed, so replay after a crash is
exact: nothing acknowledged is lost and nothing is written twice.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
import uuid
import zlib
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from pathlib import Path

from loopwise.store.base import MetricEntry

__all__ = [
    "MetricSpool",
    "WriteBatch",
    "create_spool_file",
    "dead_spools",
    "frame",
    "frames",
    "recover_spools",
]

log = logging.getLogger(__name__)

WriteBatch = Callable[[Sequence[MetricEntry], str, int], None]
"""``write_batch(entries, spool_id, upto_seq)``: insert entries and record progress atomically."""

_HEADER = struct.Struct("<II")  # payload length, crc32 of payload
_FIXED = struct.Struct("<QqqdH")  # seq, step, timestamp_ms, value, len(run_id)
SUFFIX = ".spool"


def frame(payload: bytes) -> bytes:
    """One record as it is written to a spool file: a header (length, crc32), then the payload."""
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def frames(data: bytes | memoryview) -> Iterator[tuple[memoryview, int]]:
    """``(payload, end offset)`` of each whole record in ``data``, in order.

    Stops at a torn or corrupt tail: a write that never returned, or bytes that were damaged.
    """
    view = memoryview(data)
    pos = 0
    while pos + _HEADER.size <= len(view):
        length, crc = _HEADER.unpack_from(view, pos)
        end = pos + _HEADER.size + length
        payload = view[pos + _HEADER.size : end]
        if len(payload) != length or zlib.crc32(payload) != crc:
            return
        yield payload, end
        pos = end


def _encode(seq: int, entry: MetricEntry) -> bytes:
    run_id = entry.run_id.encode()
    return frame(
        _FIXED.pack(seq, entry.step, entry.timestamp_ms, entry.value, len(run_id))
        + run_id
        + entry.key.encode()
    )


def _decode(data: bytes) -> Iterator[tuple[int, MetricEntry]]:
    """Records in order; stops at a torn or corrupt tail (a write that never returned)."""
    for payload, _ in frames(data):
        seq, step, timestamp_ms, value, run_len = _FIXED.unpack_from(payload)
        rest = bytes(payload[_FIXED.size :])
        yield (
            seq,
            MetricEntry(
                rest[:run_len].decode(), rest[run_len:].decode(), value, step, timestamp_ms
            ),
        )


def create_spool_file(directory: Path, prefix: str = "") -> tuple[str, int]:
    """A new spool file in ``directory``, locked by this process: ``(spool_id, fd)``.

    The fd is open for appending. The lock says "my owner is alive": recovery skips spools
    whose lock is held. The file takes its spool name only once locked, or another process's
    recovery could find it unlocked in between, take it for a dead process's spool and
    delete it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    spool_id = f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:12]}"
    incoming = directory / f"{spool_id}.incoming"
    fd = os.open(incoming, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(incoming, directory / f"{spool_id}{SUFFIX}")
    except BaseException:
        os.close(fd)
        raise
    return spool_id, fd


def dead_spools(directory: Path) -> Generator[tuple[str, Path, bytes], None, None]:
    """``(spool_id, path, contents)`` of each spool in ``directory`` whose owner has died.

    Each is locked while the caller handles it, so no other process recovers it at the same
    time; the caller removes the file once its records are safely elsewhere.
    """
    if not directory.is_dir():
        return
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue  # another process recovered it first
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its owner is alive and will drain it
            if os.fstat(fd).st_nlink == 0:
                continue  # recovered and removed by another process while we waited
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read()
            yield path.name.removesuffix(SUFFIX), path, data
        finally:
            os.close(fd)


class MetricSpool:
    """One process's spool file plus the thread that drains it into the database."""

    def __init__(
        self,
        directory: Path,
        write_batch: WriteBatch,
        forget: Callable[[str], None] | None = None,
        flush_interval_s: float = 0.5,
        max_pending: int = 5000,
    ) -> None:
        self.directory = directory
        self.write_batch = write_batch
        self.forget = forget
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self._lock = threading.Lock()  # guards the file, the sequence and the pending list
        self._flush_lock = threading.Lock()  # one batch in flight at a time
        self._wake = threading.Event()
        self._stopping = False
        self._pending: list[tuple[int, MetricEntry]] = []
        self._seq = 0
        self._fd = -1
        self._pid = -1
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.spool_id = ""

    # -- writer side ---------------------------------------------------------------------------
    def _open(self) -> None:
        self.spool_id, self._fd = create_spool_file(self.directory)
        self._pid = os.getpid()
        self._seq = 0
        self._pending = []
        self._stopping = False
        self._thread = threading.Thread(
            target=self._drain_forever, name="loopwise-metric-flush", daemon=True
        )
        self._thread.start()

    def append(self, entries: Sequence[MetricEntry]) -> None:
        """Spool ``entries`` with one ``write``: durable against a killed process on return."""
        if not entries:
            return
        with self._lock:
            if self._pid != os.getpid():  # first use, or we are a forked child
                self._open()
            first = self._seq + 1
            data = memoryview(b"".join(_encode(first + i, e) for i, e in enumerate(entries)))
            while data:  # a regular file takes it all at once, short of a full disk
                data = data[os.write(self._fd, data) :]
            self._pending.extend(zip(range(first, first + len(entries)), entries, strict=True))
            self._seq += len(entries)
            if len(self._pending) >= self.max_pending:
                self._wake.set()

    # -- drain side ----------------------------------------------------------------------------
    def _drain_forever(self) -> None:
        while not self._stopping:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            try:
                self._drain_once()
            except Exception as exc:  # keep the spool: replay will retry on the next open
                self._error = exc
                log.warning(
                    "Could not write metrics to the store yet (%s); they stay spooled.", exc
                )

    def _drain_once(self) -> None:
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                self.write_batch([entry for _, entry in batch], self.spool_id, batch[-1][0])
            except BaseException:
                with self._lock:
                    self._pending = batch + self._pending
                raise
            with self._lock:
                if not self._pending:
                    # Everything spooled is in the database: start the file afresh.
                    os.ftruncate(self._fd, 0)

    def flush(self) -> None:
        """Write every appended value to the database now (raises if the database refuses)."""
        if self._pid != os.getpid():
            return
        self._drain_once()

    def close(self) -> None:
        if self._pid != os.getpid() or self._thread is None:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join()
        self._drain_once()
        with self._lock:
            path = self.directory / f"{self.spool_id}{SUFFIX}"
            path.unlink(missing_ok=True)
            os.close(self._fd)
            self._pid = -1
            self._thread = None
        if self.forget is not None:
            self.forget(self.spool_id)  # its progress record is not needed once the file is gone


def recover_spools(
    directory: Path,
    write_batch: WriteBatch,
    committed_seq: Callable[[str], int],
    forget: Callable[[str], None] | None = None,
) -> int:
    """Replay the spools of processes that died before draining them; returns values replayed."""
    replayed = 0
    with closing(dead_spools(directory)) as spools:  # unlocks at once, even on an error
        for spool_id, path, data in spools:
            done = committed_seq(spool_id)
            records = [(seq, entry) for seq, entry in _decode(data) if seq > done]
            if records:
                write_batch([entry for _, entry in records], spool_id, records[-1][0])
                replayed += len(records)
            path.unlink(missing_ok=True)
            if forget is not None:
                forget(spool_id)
    return replayed
