"""The durable spool: group commit, both durability modes, draining, rotation and crash replay."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from loopwise.errors import InvalidArgumentError, StoreError
from loopwise.store import durable_spool
from loopwise.store.durable_spool import DurableSpool, recover_durable_spools
from loopwise.store.spool import SUFFIX, frame


class FakeDatabase:
    """Records batches and each spool's progress, as the store does in one transaction."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.batches: list[tuple[str, int]] = []
        self.committed: dict[str, int] = {}
        self.forgotten: list[str] = []
        self.refuse = False

    def write_batch(self, payloads: Sequence[bytes], spool_id: str, upto_seq: int) -> None:
        if self.refuse:
            raise RuntimeError("database is unavailable")
        if self.committed.get(spool_id, 0) >= upto_seq:
            return  # a replay
        self.payloads.extend(bytes(p) for p in payloads)
        self.batches.append((spool_id, upto_seq))
        self.committed[spool_id] = upto_seq

    def committed_seq(self, spool_id: str) -> int:
        return self.committed.get(spool_id, 0)

    def forget(self, spool_id: str) -> None:
        self.forgotten.append(spool_id)
        self.committed.pop(spool_id, None)


class SyncCounter:
    """Stands in for fdatasync: counts calls and takes ``delay_s`` like a real disk."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls = 0
        self.delay_s = delay_s
        self.fail = False

    def __call__(self, fd: int) -> None:
        if self.fail:
            raise OSError(errno.EIO, "Input/output error")
        time.sleep(self.delay_s)
        self.calls += 1


@pytest.fixture
def db() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> SyncCounter:
    counter = SyncCounter(delay_s=0.005)
    monkeypatch.setattr(durable_spool, "_datasync", counter)
    return counter


def _spool(
    directory: Path, db: FakeDatabase, drain_interval_s: float = 60, **options: object
) -> DurableSpool:
    return DurableSpool(
        directory,
        db.write_batch,
        db.forget,
        drain_interval_s=drain_interval_s,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def spool(tmp_path: Path, db: FakeDatabase, syncs: SyncCounter) -> Iterator[DurableSpool]:
    opened = _spool(tmp_path / "spool", db).open()
    yield opened
    opened.close()


def _payloads(n: int, start: int = 0) -> list[bytes]:
    return [f'{{"n":{i}}}'.encode() for i in range(start, start + n)]


def _spool_file(
    path: Path, payloads: Sequence[bytes], first_seq: int = 1, tail: bytes = b""
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join(
        frame(struct.pack("<Q", seq) + p) for seq, p in enumerate(payloads, start=first_seq)
    )
    path.write_bytes(data + tail)


# -- group commit ---------------------------------------------------------------------------------
def test_concurrent_awaits_share_fsyncs(spool: DurableSpool, syncs: SyncCounter) -> None:
    async def request(i: int) -> int:
        seq = spool.append_payloads(_payloads(1, i))
        await spool.durable(seq)
        return seq

    async def serve() -> list[int]:
        return await asyncio.gather(*(request(i) for i in range(500)))

    seqs = asyncio.run(serve())
    assert sorted(seqs) == list(range(1, 501))
    assert spool.durable_seq == 500
    assert 1 <= syncs.calls <= 5, syncs.calls  # 500 acknowledgements, a handful of fsyncs
    assert spool.fsync_count == syncs.calls


def test_concurrent_threads_share_fsyncs(spool: DurableSpool, syncs: SyncCounter) -> None:
    def worker(k: int) -> None:
        for i in range(25):
            spool.wait_durable(spool.append_payloads(_payloads(1, 100 * k + i)))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert spool.durable_seq == 400
    assert syncs.calls <= 400 // 3, syncs.calls


def test_a_record_is_durable_only_after_its_fsync(
    tmp_path: Path, db: FakeDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    calls = []

    def slow_sync(fd: int) -> None:
        calls.append(fd)
        gate.wait(10)

    monkeypatch.setattr(durable_spool, "_datasync", slow_sync)
    spool = _spool(tmp_path, db).open()
    try:
        seq = spool.append_payloads(_payloads(1))
        waiter = threading.Thread(target=spool.wait_durable, args=(seq,))
        waiter.start()
        time.sleep(0.1)
        assert waiter.is_alive() and spool.durable_seq == 0 and calls
        gate.set()
        waiter.join(10)
        assert not waiter.is_alive() and spool.durable_seq == seq
    finally:
        gate.set()
        spool.close()


def test_the_window_limits_fsyncs_per_second(
    tmp_path: Path, db: FakeDatabase, syncs: SyncCounter
) -> None:
    syncs.delay_s = 0
    spool = _spool(tmp_path, db, fsync_window_ms=40).open()
    try:
        started = time.monotonic()
        for i in range(6):  # one waiter at a time: each fsync waits for the window to pass
            spool.wait_durable(spool.append_payloads(_payloads(1, i)))
        elapsed_s = time.monotonic() - started
    finally:
        spool.close()
    assert syncs.calls >= 6
    assert elapsed_s >= 5 * 0.04 * 0.9, elapsed_s


def test_waiting_does_not_block_the_event_loop(spool: DurableSpool, syncs: SyncCounter) -> None:
    syncs.delay_s = 0.2
    ticks = 0

    async def ticker(stop: asyncio.Event) -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(ticker(stop))
        await spool.durable(spool.append_payloads(_payloads(1)))
        stop.set()
        await task

    asyncio.run(main())
    assert ticks >= 5


def test_a_cancelled_waiter_is_skipped(spool: DurableSpool, syncs: SyncCounter) -> None:
    syncs.delay_s = 0.05

    async def main() -> None:
        first = asyncio.create_task(spool.durable(spool.append_payloads(_payloads(1))))
        second = asyncio.create_task(spool.durable(spool.append_payloads(_payloads(1))))
        await asyncio.sleep(0)
        first.cancel()  # the client went away
        await second
        with pytest.raises(asyncio.CancelledError):
            await first

    asyncio.run(main())
    assert spool.durable_seq == 2


def test_sync_makes_records_durable_in_the_calling_thread(
    spool: DurableSpool, syncs: SyncCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    counted = syncs.__call__

    def sync(fd: int) -> None:
        threads.append(threading.current_thread().name)
        counted(fd)

    monkeypatch.setattr(durable_spool, "_datasync", sync)
    seq = spool.append_payloads(_payloads(2))
    assert spool.durable_seq == 0
    assert spool.sync() == seq == spool.durable_seq
    assert threads == [threading.current_thread().name]
    assert spool.sync() == seq and threads == [threading.current_thread().name]  # nothing new
    spool.wait_durable(seq)  # already durable: the flusher is not asked
    assert syncs.calls == 1 and spool.fsync_count == 1


def test_sync_after_a_failed_fsync_raises(spool: DurableSpool, syncs: SyncCounter) -> None:
    syncs.fail = True
    spool.append_payloads(_payloads(1))
    with pytest.raises(StoreError, match="Could not make records durable"):
        spool.sync()
    with pytest.raises(StoreError, match="Could not make records durable"):
        spool.sync()


def test_write_mode_acknowledges_without_fsync(
    tmp_path: Path, db: FakeDatabase, syncs: SyncCounter
) -> None:
    spool = _spool(tmp_path, db, durability="write").open()
    try:
        seq = spool.append_payloads(_payloads(3))
        assert spool.durable_seq == seq == 3
        spool.wait_durable(seq)
        asyncio.run(spool.durable(seq))
    finally:
        spool.close()
    assert syncs.calls == 0 and spool.fsync_count == 0
    assert db.payloads == _payloads(3)


def test_a_failed_fsync_fails_waiters_and_later_appends(
    spool: DurableSpool, syncs: SyncCounter
) -> None:
    syncs.fail = True
    seq = spool.append_payloads(_payloads(1))
    with pytest.raises(StoreError, match="Could not make records durable"):
        spool.wait_durable(seq, timeout_s=10)
    with pytest.raises(StoreError, match="Could not make records durable"):
        asyncio.run(spool.durable(seq))
    with pytest.raises(StoreError, match="Could not make records durable"):
        spool.append_payloads(_payloads(1))


# -- appending ------------------------------------------------------------------------------------
def test_sequence_numbers_and_bad_arguments(spool: DurableSpool) -> None:
    assert spool.append_payloads(_payloads(3)) == 3
    assert spool.append_payloads([]) == 3
    assert spool.append_payloads(_payloads(1)) == 4
    for bad in (5, -1, "3", 2.0, True):
        with pytest.raises(InvalidArgumentError, match="sequence number returned by append"):
            spool.wait_durable(bad)  # type: ignore[arg-type]
    too_big = b"x" * (durable_spool.MAX_PAYLOAD_BYTES + 1)
    with pytest.raises(InvalidArgumentError, match="at most"):
        spool.append_payloads([b"ok", too_big])
    assert spool.last_seq == 4  # nothing of the refused call was written


def test_a_failed_write_leaves_no_torn_record(
    spool: DurableSpool, db: FakeDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool.append_payloads(_payloads(2))
    real_write = os.write

    def disk_full(fd: int, data: bytes | memoryview) -> int:
        real_write(fd, bytes(data)[:7])  # part of the batch lands, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(StoreError, match="Free disk space"):
        spool.append_payloads(_payloads(3, 10))
    monkeypatch.setattr(os, "write", real_write)
    assert spool.append_payloads(_payloads(1, 20)) == 3
    spool.drain()
    assert db.payloads == _payloads(2) + _payloads(1, 20)


@pytest.mark.parametrize(
    ("option", "value"),
    [("durability", "sometimes"), ("fsync_window_ms", -1), ("drain_interval_s", 0)],
)
def test_bad_options_are_refused_on_open(
    tmp_path: Path, db: FakeDatabase, option: str, value: Any
) -> None:
    spool = _spool(tmp_path, db, **{option: value})
    with pytest.raises(InvalidArgumentError, match=option):
        spool.open()
    with pytest.raises(StoreError, match="open"):
        spool.append_payloads(_payloads(1))


def test_appending_before_open_or_after_close(tmp_path: Path, db: FakeDatabase) -> None:
    spool = _spool(tmp_path, db, durability="write")
    with pytest.raises(StoreError, match=r"call open\(\) first"):
        spool.append_payloads(_payloads(1))
    spool.open()
    spool.close()
    with pytest.raises(StoreError, match=r"after close\(\)"):
        spool.append_payloads(_payloads(1))


# -- draining -------------------------------------------------------------------------------------
def test_drain_hands_over_batches_with_their_progress(
    spool: DurableSpool, db: FakeDatabase
) -> None:
    spool.append_payloads(_payloads(3))
    spool.append_payloads(_payloads(2, 3))
    spool.drain()
    assert db.payloads == _payloads(5)
    [(spool_id, upto)] = db.batches
    assert upto == 5
    spool.drain()  # nothing new: nothing written
    assert len(db.batches) == 1
    spool.append_payloads(_payloads(1, 5))
    spool.drain()
    assert db.batches[-1] == (spool_id, 6)


def test_background_drain(tmp_path: Path, db: FakeDatabase, syncs: SyncCounter) -> None:
    spool = _spool(tmp_path, db, drain_interval_s=0.01).open()
    try:
        spool.append_payloads(_payloads(20))
        deadline = time.monotonic() + 10
        while len(db.payloads) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert db.payloads == _payloads(20)
    finally:
        spool.close()


def test_a_refused_batch_is_kept_and_retried(spool: DurableSpool, db: FakeDatabase) -> None:
    spool.append_payloads(_payloads(3))
    db.refuse = True
    with pytest.raises(RuntimeError, match="unavailable"):
        spool.drain()
    spool.append_payloads(_payloads(2, 3))
    db.refuse = False
    spool.drain()
    assert db.payloads == _payloads(5)


def test_files_rotate_and_drained_ones_are_deleted(
    tmp_path: Path, db: FakeDatabase, syncs: SyncCounter
) -> None:
    folder = tmp_path / "spool"
    spool = _spool(folder, db, max_file_bytes=100).open()
    try:
        for i in range(10):
            spool.wait_durable(spool.append_payloads(_payloads(1, i)))
        assert len(list(folder.glob(f"*{SUFFIX}"))) == 3  # four records fit in 100 bytes
        spool.drain()
        assert db.payloads == _payloads(10)
        # Each file is its own spool id with consecutive sequence numbers; all but the one
        # taking appends are gone, and their progress records with them.
        assert [upto for _, upto in db.batches] == sorted(upto for _, upto in db.batches)
        assert len(list(folder.glob(f"*{SUFFIX}"))) == 1
        assert len(db.forgotten) == len(db.batches) - 1
    finally:
        spool.close()
    assert list(folder.glob(f"*{SUFFIX}")) == []
    assert db.payloads == _payloads(10)  # closing wrote nothing twice


def test_rotated_files_nobody_waited_for_are_synced_then_deleted(
    tmp_path: Path, db: FakeDatabase, syncs: SyncCounter
) -> None:
    folder = tmp_path / "spool"
    spool = _spool(folder, db, max_file_bytes=100).open()
    try:
        spool.append_payloads(_payloads(10))  # one file, never awaited
        spool.append_payloads(_payloads(4, 10))  # over 100 bytes: a second file
        spool.drain()  # drained, but not yet synced: kept, and a sync is asked for
        deadline = time.monotonic() + 10
        while spool.durable_seq < 14 and time.monotonic() < deadline:
            time.sleep(0.01)
        spool.drain()
        assert len(list(folder.glob(f"*{SUFFIX}"))) == 1
        assert db.payloads == _payloads(14)
    finally:
        spool.close()


def test_close_makes_durable_drains_and_removes_the_file(
    tmp_path: Path, db: FakeDatabase, syncs: SyncCounter
) -> None:
    folder = tmp_path / "spool"
    spool = _spool(folder, db).open()
    spool.append_payloads(_payloads(4))
    spool.close()
    assert spool.durable_seq == 4
    assert db.payloads == _payloads(4)
    assert list(folder.iterdir()) == []


def test_close_keeps_what_the_store_refuses(
    tmp_path: Path, db: FakeDatabase, syncs: SyncCounter
) -> None:
    folder = tmp_path / "spool"
    spool = _spool(folder, db).open()
    spool.append_payloads(_payloads(4))
    db.refuse = True
    spool.close()
    db.refuse = False
    assert recover_durable_spools(folder, db.write_batch, db.committed_seq, db.forget) == 4
    assert db.payloads == _payloads(4)


# -- crash replay ---------------------------------------------------------------------------------
def test_recover_replays_a_dead_file_exactly(tmp_path: Path, db: FakeDatabase) -> None:
    _spool_file(tmp_path / f"dead-1{SUFFIX}", _payloads(10))
    assert recover_durable_spools(tmp_path, db.write_batch, db.committed_seq, db.forget) == 10
    assert db.payloads == _payloads(10)
    assert db.batches == [("dead-1", 10)]
    assert db.forgotten == ["dead-1"]
    assert list(tmp_path.iterdir()) == []


def test_recover_skips_what_was_committed_and_batches_large_files(
    tmp_path: Path, db: FakeDatabase
) -> None:
    # A file that starts at seq 41 (a rotated one), drained up to 45 before its owner died.
    _spool_file(tmp_path / f"dead-2{SUFFIX}", _payloads(10), first_seq=41)
    db.committed["dead-2"] = 45
    replayed = recover_durable_spools(
        tmp_path, db.write_batch, db.committed_seq, max_batch_bytes=40
    )
    assert replayed == 5
    assert db.payloads == _payloads(5, 5)
    assert db.batches[-1] == ("dead-2", 50) and len(db.batches) > 1


def test_torn_and_corrupt_tails_are_ignored(tmp_path: Path, db: FakeDatabase) -> None:
    torn = frame(struct.pack("<Q", 4) + b'{"n":3}')[:-2]
    _spool_file(tmp_path / f"dead-3{SUFFIX}", _payloads(3), tail=torn)
    assert recover_durable_spools(tmp_path, db.write_batch, db.committed_seq) == 3
    data = bytearray(b"".join(frame(struct.pack("<Q", s) + b"{}") for s in (1, 2, 3)))
    data[-1] ^= 0xFF  # a damaged last record
    (tmp_path / f"dead-4{SUFFIX}").write_bytes(bytes(data))
    assert recover_durable_spools(tmp_path, db.write_batch, db.committed_seq) == 2
    assert db.batches == [("dead-3", 3), ("dead-4", 2)]


def test_replay_after_a_crash_between_commit_and_delete(tmp_path: Path, db: FakeDatabase) -> None:
    dead = tmp_path / "spools" / f"dead-5{SUFFIX}"
    _spool_file(dead, _payloads(6))
    backup = tmp_path / "backup"
    shutil.copy(dead, backup)
    assert recover_durable_spools(dead.parent, db.write_batch, db.committed_seq) == 6
    shutil.copy(backup, dead)  # the file is back, as if deleting it never happened
    assert recover_durable_spools(dead.parent, db.write_batch, db.committed_seq) == 0
    assert db.payloads == _payloads(6)


def test_a_live_spool_is_left_alone(tmp_path: Path, db: FakeDatabase, syncs: SyncCounter) -> None:
    owner = _spool(tmp_path, db).open()
    try:
        owner.append_payloads(_payloads(3))
        other = FakeDatabase()
        assert recover_durable_spools(tmp_path, other.write_batch, other.committed_seq) == 0
        assert other.payloads == [] and len(list(tmp_path.glob(f"*{SUFFIX}"))) == 1
    finally:
        owner.close()
    assert db.payloads == _payloads(3)


def test_a_damaged_record_in_the_middle_costs_only_itself(tmp_path: Path, db: FakeDatabase) -> None:
    records = [frame(struct.pack("<Q", seq) + p) for seq, p in enumerate(_payloads(100), start=1)]
    damaged = bytearray(records[40])
    damaged[-3] ^= 0x01
    records[40] = bytes(damaged)
    (tmp_path / f"dead-6{SUFFIX}").write_bytes(b"".join(records))
    assert recover_durable_spools(tmp_path, db.write_batch, db.committed_seq) == 99
    assert db.payloads == _payloads(40) + _payloads(59, 41)
    assert (tmp_path / "refused" / "dead-6.damaged").read_bytes() == bytes(damaged)


class RefusingDatabase(FakeDatabase):
    """Refuses records that say ``"bad"``, as the store refuses a project that does not exist."""

    def write_batch(self, payloads: Sequence[bytes], spool_id: str, upto_seq: int) -> None:
        if any(b"bad" in p for p in payloads):
            raise InvalidArgumentError("No project 'bad'.")
        super().write_batch(payloads, spool_id, upto_seq)


@pytest.mark.parametrize("keep_refused", [False, True])
def test_refused_records_are_set_aside_or_kept(tmp_path: Path, keep_refused: bool) -> None:
    db = RefusingDatabase()
    payloads = _payloads(10)
    payloads[3] = b'{"bad":1}'
    _spool_file(tmp_path / f"dead-7{SUFFIX}", payloads)
    replayed = recover_durable_spools(
        tmp_path, db.write_batch, db.committed_seq, db.forget, keep_refused=keep_refused
    )
    assert replayed == 9 and db.payloads == payloads[:3] + payloads[4:]
    report = (tmp_path / "refused" / "dead-7.jsonl").read_text()
    assert '"seq": 4' in report and "No project 'bad'" in report
    kept = tmp_path / (f"dead-7{SUFFIX}" if keep_refused else f"refused/dead-7{SUFFIX}")
    assert kept.read_bytes() == frame(struct.pack("<Q", 4) + b'{"bad":1}')
    # Kept in the spool folder, the record is offered again on the next replay (alone).
    again = recover_durable_spools(
        tmp_path, db.write_batch, db.committed_seq, db.forget, keep_refused=keep_refused
    )
    assert again == 0 and kept.exists() and db.payloads == payloads[:3] + payloads[4:]
