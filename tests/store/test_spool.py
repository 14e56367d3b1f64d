"""The metric spool: values survive a killed process and are replayed exactly once."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from loopwise.errors import NotFoundError
from loopwise.store import MetricEntry, open_store
from loopwise.store.spool import REFUSED, SUFFIX, MetricSpool, _decode, _encode, recover_spools

T0_MS = 1_700_000_000_000


class FakeDatabase:
    """Records batches and committed sequence numbers, as the metadata store does."""

    def __init__(self) -> None:
        self.entries: list[MetricEntry] = []
        self.batches: list[tuple[str, int]] = []
        self.committed: dict[str, int] = {}
        self.refuse = False

    def write_batch(self, entries: Sequence[MetricEntry], spool_id: str, upto_seq: int) -> None:
        if self.refuse:
            raise RuntimeError("database is unavailable")
        self.entries.extend(entries)
        self.batches.append((spool_id, upto_seq))
        self.committed[spool_id] = upto_seq

    def committed_seq(self, spool_id: str) -> int:
        return self.committed.get(spool_id, 0)


def _entries(n: int, run_id: str = "r" * 32) -> list[MetricEntry]:
    return [MetricEntry(run_id, "loss", i / 3, i, T0_MS + i) for i in range(1, n + 1)]


def _write_spool(path: Path, entries: Sequence[MetricEntry], tail: bytes = b"") -> bytes:
    data = b"".join(_encode(seq, e) for seq, e in enumerate(entries, start=1)) + tail
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def test_recover_replays_a_dead_spool_exactly(tmp_path: Path) -> None:
    db = FakeDatabase()
    entries = _entries(10)
    _write_spool(tmp_path / f"dead-1{SUFFIX}", entries)
    assert recover_spools(tmp_path, db.write_batch, db.committed_seq) == 10
    assert db.entries == entries
    assert db.batches == [("dead-1", 10)]
    assert list(tmp_path.iterdir()) == []


def test_torn_tail_is_ignored(tmp_path: Path) -> None:
    db = FakeDatabase()
    entries = _entries(5)
    torn = _encode(6, MetricEntry("r" * 32, "loss", 9.0, 6, T0_MS))[:-3]
    _write_spool(tmp_path / f"dead-1{SUFFIX}", entries, tail=torn)
    assert recover_spools(tmp_path, db.write_batch, db.committed_seq) == 5
    assert db.entries == entries
    assert db.batches == [("dead-1", 5)]


def test_torn_header_is_ignored(tmp_path: Path) -> None:
    db = FakeDatabase()
    _write_spool(tmp_path / f"dead-1{SUFFIX}", _entries(3), tail=b"\x05\x00")
    assert recover_spools(tmp_path, db.write_batch, db.committed_seq) == 3


def test_a_damaged_record_costs_only_itself(tmp_path: Path) -> None:
    # One bit flip in a 1,000-record spool: the 999 intact records after and before it are
    # replayed (the replay resynchronises on the next intact record), the bytes set aside.
    db = FakeDatabase()
    entries = _entries(1000)
    data = bytearray(b"".join(_encode(seq, e) for seq, e in enumerate(entries, start=1)))
    record_bytes = len(_encode(1, entries[0]))
    data[3 * record_bytes + 12] ^= 0xFF  # a bit flip inside the fourth record
    (tmp_path / f"dead-1{SUFFIX}").write_bytes(bytes(data))
    assert recover_spools(tmp_path, db.write_batch, db.committed_seq) == 999
    assert db.entries == entries[:3] + entries[4:]
    assert not (tmp_path / f"dead-1{SUFFIX}").exists()
    aside = tmp_path / REFUSED
    assert (aside / "dead-1.damaged").read_bytes() == bytes(
        data[3 * record_bytes : 4 * record_bytes]
    )
    [line] = (aside / "dead-1.jsonl").read_text().splitlines()
    assert json.loads(line) == {
        "offset": 3 * record_bytes,
        "bytes": record_bytes,
        "reason": "damaged: unreadable bytes",
    }


def test_a_lost_stretch_of_records_is_skipped(tmp_path: Path) -> None:
    db = FakeDatabase()
    entries = _entries(50)
    data = bytearray(b"".join(_encode(seq, e) for seq, e in enumerate(entries, start=1)))
    record_bytes = len(_encode(1, entries[0]))
    data[10 * record_bytes + 5 : 20 * record_bytes + 9] = bytes(10 * record_bytes + 4)  # zeroed
    (tmp_path / f"dead-1{SUFFIX}").write_bytes(bytes(data))
    assert recover_spools(tmp_path, db.write_batch, db.committed_seq) == 39
    assert db.entries == entries[:10] + entries[21:]


class CheckingDatabase(FakeDatabase):
    """Refuses values of unknown runs, as the store's checked write does, and whole batches
    whose progress runs ahead of their records, as the store does."""

    def __init__(self, runs: set[str]) -> None:
        super().__init__()
        self.runs = runs

    def write_batch(self, entries: Sequence[MetricEntry], spool_id: str, upto_seq: int) -> None:
        unknown = {e.run_id for e in entries} - self.runs
        if unknown:
            raise NotFoundError(f"No run with id {sorted(unknown)[0]!r}.")
        done = self.committed.get(spool_id, 0)
        assert not done or upto_seq <= done + len(entries), (done, upto_seq, len(entries))
        super().write_batch(entries, spool_id, upto_seq)


def test_refused_records_are_set_aside_and_the_rest_written(tmp_path: Path) -> None:
    good, bad = "a" * 32, "b" * 32
    db = CheckingDatabase({good})
    entries = _entries(20, run_id=good)
    entries[7] = entries[7]._replace(run_id=bad)
    entries[12] = entries[12]._replace(run_id=bad)
    _write_spool(tmp_path / f"dead-1{SUFFIX}", entries)
    db.committed["dead-1"] = 2  # the owner wrote two before it died
    assert recover_spools(tmp_path, db.write_batch, db.committed_seq) == 16
    assert db.entries == [e for e in entries[2:] if e.run_id == good]
    # Past the refused records the progress counts records: it never runs ahead of them.
    assert db.batches[-1] == ("dead-1", 18)
    lines = [json.loads(x) for x in (tmp_path / REFUSED / "dead-1.jsonl").read_text().splitlines()]
    assert [(x["seq"], x["run_id"]) for x in lines] == [(8, bad), (13, bad)]
    assert all("No run with id" in x["reason"] for x in lines)
    # The refused records, framed as in a spool: move the file back to replay them.
    kept = [e for _, e in _decode((tmp_path / REFUSED / f"dead-1{SUFFIX}").read_bytes())]
    assert kept == [entries[7], entries[12]]


def test_a_store_that_cannot_take_records_now_keeps_the_file(tmp_path: Path) -> None:
    db = FakeDatabase()
    db.refuse = True  # unavailable: not a refusal of the records themselves
    _write_spool(tmp_path / f"dead-1{SUFFIX}", _entries(3))
    assert recover_spools(tmp_path, db.write_batch, db.committed_seq) == 0
    assert (tmp_path / f"dead-1{SUFFIX}").exists() and not (tmp_path / REFUSED).exists()
    db.refuse = False
    assert recover_spools(tmp_path, db.write_batch, db.committed_seq) == 3


def test_replay_is_idempotent(tmp_path: Path) -> None:
    db = FakeDatabase()
    entries = _entries(10)
    spool = tmp_path / "spools" / f"dead-1{SUFFIX}"
    _write_spool(spool, entries)
    db.committed["dead-1"] = 4  # the owner drained four values before it died
    backup = tmp_path / "backup"
    shutil.copy(spool, backup)

    assert recover_spools(spool.parent, db.write_batch, db.committed_seq) == 6
    assert db.entries == entries[4:]
    # A crash after the commit but before the file was removed: replaying again writes nothing.
    shutil.copy(backup, spool)
    assert recover_spools(spool.parent, db.write_batch, db.committed_seq) == 0
    assert db.entries == entries[4:]
    assert db.batches == [("dead-1", 10)]
    assert not spool.exists()


def test_spool_of_a_live_owner_is_left_alone(tmp_path: Path) -> None:
    owner_db, other_db = FakeDatabase(), FakeDatabase()
    spool = MetricSpool(tmp_path, owner_db.write_batch, flush_interval_s=60)
    entries = _entries(3)
    for entry in entries:
        spool.append([entry])
    try:
        [path] = tmp_path.glob(f"*{SUFFIX}")
        assert recover_spools(tmp_path, other_db.write_batch, other_db.committed_seq) == 0
        assert other_db.entries == []
        assert path.exists()
    finally:
        spool.close()
    assert owner_db.entries == entries
    assert list(tmp_path.iterdir()) == []


def test_spool_file_is_named_only_once_locked(tmp_path: Path) -> None:
    # A file that is not yet a (locked) spool must be invisible to recovery.
    db = FakeDatabase()
    _write_spool(tmp_path / "new-1.incoming", _entries(2))
    assert recover_spools(tmp_path, db.write_batch, db.committed_seq) == 0
    assert (tmp_path / "new-1.incoming").exists()
    spool = MetricSpool(tmp_path / "live", db.write_batch, flush_interval_s=60)
    spool.append(_entries(1)[:1])
    try:
        assert [p.suffix for p in (tmp_path / "live").iterdir()] == [SUFFIX]
    finally:
        spool.close()


def test_background_drain_empties_the_spool(tmp_path: Path) -> None:
    db = FakeDatabase()
    spool = MetricSpool(tmp_path, db.write_batch, flush_interval_s=0.01)
    entries = _entries(20)
    try:
        for entry in entries:
            spool.append([entry])
        deadline = time.monotonic() + 10
        while len(db.entries) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert db.entries == entries
        [path] = tmp_path.glob(f"*{SUFFIX}")
        deadline = time.monotonic() + 10
        while path.stat().st_size and time.monotonic() < deadline:
            time.sleep(0.01)
        assert path.stat().st_size == 0  # everything committed: the file starts afresh
    finally:
        spool.close()


def test_refused_batch_is_kept_and_retried(tmp_path: Path) -> None:
    db = FakeDatabase()
    spool = MetricSpool(tmp_path, db.write_batch, flush_interval_s=60)
    entries = _entries(5)
    try:
        for entry in entries[:3]:
            spool.append([entry])
        db.refuse = True
        with pytest.raises(RuntimeError, match="unavailable"):
            spool.flush()
        for entry in entries[3:]:
            spool.append([entry])
        db.refuse = False
        spool.flush()
        assert db.entries == entries
    finally:
        spool.close()
    assert db.entries == entries  # closing wrote nothing twice


# -- through the store ---------------------------------------------------------------------------
def test_store_replays_a_dead_spool_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(tmp_path / "store")
    store.get_or_create_project("proj")
    run = store.create_run("proj", "r").id
    store.close()
    entries = _entries(25, run_id=run)
    spool = tmp_path / "store" / "spool" / f"12345-deadbeef0000{SUFFIX}"
    _write_spool(spool, entries)

    # The first recovering process dies after committing the replay but before removing the
    # file: the next one must find the file again and write nothing twice.
    real_unlink = Path.unlink

    def crash_on_spool(path: Path, missing_ok: bool = False) -> None:
        if path == spool:
            raise KeyboardInterrupt("killed between commit and unlink")
        real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", crash_on_spool)
    with pytest.raises(KeyboardInterrupt):
        open_store(tmp_path / "store")
    monkeypatch.setattr(Path, "unlink", real_unlink)
    assert spool.exists()

    store = open_store(tmp_path / "store")
    try:
        history = store.get_metric_history(run, "loss")
        assert [(m.value, m.step, m.timestamp_ms) for m in history] == [
            (e.value, e.step, e.timestamp_ms) for e in entries
        ]
        assert store.get_run(run).metrics == {"loss": 25 / 3}
        assert not spool.exists()
    finally:
        store.close()


def test_a_record_of_an_unknown_run_does_not_stop_the_store_from_opening(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(tmp_path / "store")
    store.get_or_create_project("proj")
    run = store.create_run("proj", "r").id
    store.close()
    entries = _entries(10, run_id=run)
    entries[4] = entries[4]._replace(run_id="f" * 32)  # an intact record naming no run
    entries[6] = entries[6]._replace(key="")  # and one no API would accept
    spool = tmp_path / "store" / "spool" / f"12345-deadbeef0000{SUFFIX}"
    _write_spool(spool, entries)

    for _ in range(2):  # every open succeeds, the first replaying, the second finding nothing
        store = open_store(tmp_path / "store")
        try:
            history = store.get_metric_history(run, "loss")
            assert [m.step for m in history] == [
                e.step for i, e in enumerate(entries) if i not in (4, 6)
            ]
        finally:
            store.close()
    assert not spool.exists()
    assert "2 refused" in caplog.text and "No run with id" in caplog.text
    report = tmp_path / "store" / "spool" / REFUSED / "12345-deadbeef0000.jsonl"
    assert [json.loads(line)["seq"] for line in report.read_text().splitlines()] == [5, 7]


CHILD = textwrap.dedent(
    """
    import sys, time
    from loopwise.store import MetricEntry, open_store

    store = open_store(sys.argv[1])
    store.get_or_create_project("proj")
    run = store.create_run("proj", "doomed")
    for i in range(1000):
        store.log_metric_async(MetricEntry(run.id, "loss", i / 7, i, 1_700_000_000_000 + i))
    print("logged", run.id, flush=True)
    time.sleep(120)
    """
)


def test_async_metrics_survive_sigkill(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        line = child.stdout.readline()
        if not line.startswith("logged "):
            child.kill()
            pytest.fail(f"the child did not log its metrics: {line!r} {child.stderr.read()}")
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    run_id = line.split()[1]

    store = open_store(folder)
    try:
        history = store.get_metric_history(run_id, "loss")
        assert len(history) == 1000
        assert [(m.value, m.step, m.timestamp_ms) for m in history] == [
            (i / 7, i, 1_700_000_000_000 + i) for i in range(1000)
        ]
        assert store.get_run(run_id).metrics == {"loss": 999 / 7}
        assert list((folder / "spool").glob(f"*{SUFFIX}")) == []
    finally:
        store.close()
