"""A durable local spool for metric values: fast to append, replayed after a crash.

``append`` writes one framed record to a per-process file with a single ``write`` system call
(the bytes are then in the kernel and survive the process being killed) and returns; a
background thread moves batches to the database. The database records, in the same
transaction as each batch, how far the spool has been committed, so replay after a crash is
exact: nothing acknowledged is lost and nothing is written twice.

Replay (here and for prediction spools) skips only what is damaged, resynchronising on the next
whole record, and sets aside what the store refuses: ``refused/`` beside the spool files.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import struct
import threading
import uuid
import zlib
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

from loopwise.errors import AuthenticationError, LoopwiseError
from loopwise.store.base import MetricEntry

__all__ = [
    "REFUSED",
    "Damage",
    "MetricSpool",
    "ReplayResult",
    "WriteBatch",
    "create_spool_file",
    "dead_spools",
    "default_spool_dir",
    "frame",
    "frames",
    "recover_spools",
    "replay_spool",
    "scan_frames",
]

log = logging.getLogger(__name__)

WriteBatch = Callable[[Sequence[MetricEntry], str, int], None]
"""``write_batch(entries, spool_id, upto_seq)``: insert entries and record progress atomically."""

T = TypeVar("T")
_HEADER = struct.Struct("<II")  # payload length, crc32 of payload
_FIXED = struct.Struct("<QqqdH")  # seq, step, timestamp_ms, value, len(run_id)
SUFFIX = ".spool"
REFUSED = "refused"
"""The folder, beside the spool files, where replay sets aside what it could not write."""
MAX_RECORD_BYTES = 4 * 2**20 + 8  # no spool writes a longer payload (see durable_spool)
REPLAY_BATCH_BYTES = 2**20


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


def _parse(payload: memoryview) -> tuple[int, MetricEntry]:
    """``(seq, entry)`` of one metric record; ValueError if its bytes do not make one."""
    try:
        seq, step, timestamp_ms, value, run_len = _FIXED.unpack_from(payload)
        rest = bytes(payload[_FIXED.size :])
        if run_len > len(rest):
            raise ValueError(f"a run id of {run_len} bytes in a record of {len(payload)}")
        entry = MetricEntry(
            rest[:run_len].decode(), rest[run_len:].decode(), value, step, timestamp_ms
        )
    except (struct.error, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None
    return seq, entry


def _decode(data: bytes) -> Iterator[tuple[int, MetricEntry]]:
    """Records in order; stops at a torn or corrupt tail (a write that never returned)."""
    for payload, _ in frames(data):
        yield _parse(payload)


class Damage(NamedTuple):
    """Bytes of a spool file that hold no readable record, between two that do."""

    offset: int
    length: int


def _frame_at(view: memoryview, pos: int, min_payload: int) -> int:
    """The end offset of a whole, intact record starting at ``pos``, or -1."""
    length, crc = _HEADER.unpack_from(view, pos)
    end = pos + _HEADER.size + length
    if not min_payload <= length <= MAX_RECORD_BYTES or end > len(view):
        return -1
    return end if zlib.crc32(view[pos + _HEADER.size : end]) == crc else -1


def scan_frames(
    data: bytes | memoryview, min_payload: int = 1
) -> Iterator[tuple[memoryview, int] | Damage]:
    """``(payload, end offset)`` of each intact record, and a ``Damage`` for each stretch of
    bytes between two that is not one: a bit flip or a lost sector does not hide the records
    after it. A torn tail (the write that never returned) ends the scan without a ``Damage``.
    """
    view = memoryview(data)
    pos = 0
    while pos + _HEADER.size <= len(view):
        end = _frame_at(view, pos, min_payload)
        if end >= 0:
            yield view[pos + _HEADER.size : end], end
            pos = end
            continue
        # Resynchronise: the next offset where an intact record starts.
        nxt = pos + 1
        while nxt + _HEADER.size <= len(view) and _frame_at(view, nxt, min_payload) < 0:
            nxt += 1
        if nxt + _HEADER.size > len(view):
            return  # nothing intact after it: a torn tail, never acknowledged
        yield Damage(pos, nxt - pos)
        pos = nxt


class ReplayResult(NamedTuple):
    """What replaying one spool file did."""

    written: int
    refused: int
    damaged_bytes: int
    report: Path | None
    """``refused/<spool id>.jsonl``, listing what was set aside; None when nothing was."""
    first_reason: str
    """Why the first refused record was refused (the store's message)."""

    def warning(self, what: str, path: Path, refused_to: str) -> str:
        return (
            f"Replayed {self.written} {what} from {path}; {self.refused} refused ({refused_to}; "
            f"the first because: {self.first_reason or '-'}) and {self.damaged_bytes} damaged "
            f"bytes skipped. Listed in {self.report}."
        )


def _refusal(exc: BaseException) -> bool:
    """True when the store refused the records themselves (a 4xx), not when it was unreachable
    or busy: those are set aside, the others retried on the next open."""
    return (
        isinstance(exc, LoopwiseError)
        and 400 <= exc.http_status < 500
        and not isinstance(exc, AuthenticationError)
    )


@dataclass
class _Replay(Generic[T]):
    """One file's replay: what the store has (``position``), what was written and refused."""

    spool_id: str
    write: Callable[[Sequence[T], str, int], None]
    position: int
    written: int = 0
    refused: list[tuple[int, memoryview, T, str]] = field(default_factory=list)

    def send(self, chunk: Sequence[tuple[int, memoryview, T]]) -> None:
        """Write ``chunk``; when the store refuses it, find the refused records by halving."""
        last = chunk[-1][0]
        # The store lets a spool's progress move ahead by at most the records a batch brings,
        # so after skipped records the progress counts records rather than naming the last seq.
        upto = last if self.position == 0 else min(last, self.position + len(chunk))
        try:
            self.write([item for _, _, item in chunk], self.spool_id, upto)
        except Exception as exc:
            if not _refusal(exc):
                raise
            if len(chunk) == 1:
                seq, payload, item = chunk[0]
                self.refused.append((seq, payload, item, str(exc)[:500]))
                return
            middle = len(chunk) // 2
            self.send(chunk[:middle])
            self.send(chunk[middle:])
            return
        self.position = max(self.position, upto)
        self.written += len(chunk)


def _set_aside(
    directory: Path,
    spool_id: str,
    data: memoryview,
    damage: Sequence[Damage],
    refused: Sequence[tuple[int, memoryview, Any, str]],
    describe: Callable[[Any], dict[str, Any]],
) -> Path:
    """Append refused records (framed as in a spool, so the file can be replayed) and damaged
    bytes to ``refused/<spool_id>.*``, with a line each in ``<spool_id>.jsonl`` saying why."""
    folder = directory / REFUSED
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"offset": d.offset, "bytes": d.length, "reason": "damaged: unreadable bytes"})
        for d in damage
    ]
    lines += [
        json.dumps({"seq": seq, **describe(item), "reason": reason})
        for seq, _, item, reason in refused
    ]
    if damage:
        with open(folder / f"{spool_id}.damaged", "ab") as f:
            for d in damage:
                f.write(data[d.offset : d.offset + d.length])
    if refused:
        with open(folder / f"{spool_id}{SUFFIX}", "ab") as f:
            f.write(b"".join(frame(bytes(payload)) for _, payload, _, _ in refused))
    report = folder / f"{spool_id}.jsonl"
    with open(report, "a", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
    return report


def replay_spool(
    directory: Path,
    spool_id: str,
    data: bytes,
    *,
    parse: Callable[[memoryview], tuple[int, T]],
    write: Callable[[Sequence[T], str, int], None],
    done: int,
    describe: Callable[[T], dict[str, Any]],
    min_payload: int = 1,
    max_batch_bytes: int = REPLAY_BATCH_BYTES,
) -> ReplayResult:
    """Write a dead spool file's records after ``done`` to the store, in order.

    Damaged bytes are skipped (the records after them are still read); records the store
    refuses (an unknown run, a project that does not exist) are set aside in ``refused/``.
    Raises what is not a refusal (the store unreachable or busy): the caller keeps the file.
    """
    view = memoryview(data)
    damage: list[Damage] = []
    records: list[tuple[int, memoryview, T]] = []
    last_seq = 0
    for found in scan_frames(view, min_payload):
        if isinstance(found, Damage):
            damage.append(found)
            continue
        payload, end = found
        try:
            seq, item = parse(payload)
        except ValueError:
            seq = -1
        if seq <= last_seq:  # unreadable, or out of order: not a record this spool wrote
            damage.append(Damage(end - len(payload) - _HEADER.size, len(payload) + _HEADER.size))
            continue
        last_seq = seq
        if seq > done:
            records.append((seq, payload, item))
    report = None
    if damage:  # before writing anything: what cannot be read is kept, whatever happens next
        report = _set_aside(directory, spool_id, view, damage, [], describe)
    replay: _Replay[T] = _Replay(spool_id, write, done)
    start = size = 0
    for i, (_, payload, _) in enumerate(records):
        if size and size + len(payload) > max_batch_bytes:
            replay.send(records[start:i])
            start, size = i, 0
        size += len(payload)
    if records[start:]:
        replay.send(records[start:])
    if replay.refused:
        report = _set_aside(directory, spool_id, view, [], replay.refused, describe)
    return ReplayResult(
        replay.written,
        len(replay.refused),
        sum(d.length for d in damage),
        report,
        replay.refused[0][3] if replay.refused else "",
    )


def _describe(entry: MetricEntry) -> dict[str, Any]:
    return entry._asdict()


def default_spool_dir(uri: str) -> Path:
    """Where this machine spools metrics for ``uri``: ``LOOPWISE_SPOOL`` or a per-user cache."""
    if os.environ.get("LOOPWISE_SPOOL"):
        return Path(os.environ["LOOPWISE_SPOOL"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "loopwise" / "spool" / hashlib.sha256(uri.encode()).hexdigest()[:16]


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
    """Replay the spools of processes that died before draining them; returns values replayed.

    ``write_batch`` must check the values (the run exists, the key is valid) as it writes them:
    what it refuses is set aside in ``refused/`` with what was damaged, and a warning says how
    much. A file the store cannot take now (unreachable, busy) is kept for the next open; this
    never raises for one bad file.
    """
    replayed = 0
    with closing(dead_spools(directory)) as spools:  # unlocks at once, even on an error
        for spool_id, path, data in spools:
            try:
                result = replay_spool(
                    directory,
                    spool_id,
                    data,
                    parse=_parse,
                    write=write_batch,
                    done=committed_seq(spool_id),
                    describe=_describe,
                    min_payload=_FIXED.size,
                )
            except Exception as exc:
                log.warning("Could not replay the metric spool %s yet (%s); it is kept.", path, exc)
                continue
            replayed += result.written
            if result.report is not None:
                log.warning("%s", result.warning("metric values", path, f"set aside in {REFUSED}/"))
            path.unlink(missing_ok=True)
            if forget is not None:
                forget(spool_id)
    return replayed
