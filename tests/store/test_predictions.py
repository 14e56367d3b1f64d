"""The prediction log end to end: records checked, spooled, drained to Parquet once, read back."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loopwise.errors import InvalidArgumentError, PermissionDeniedError
from loopwise.server import create_app
from loopwise.store import PredictionSegment, Store, open_store
from loopwise.store.predictions import (
    PredictionRecord,
    PredictionSpool,
    _encode,
    decode_record,
    default_directory,
    encode_batch,
    read_predictions,
    write_predictions,
)
from loopwise.store.remote import RemoteStore
from loopwise.store.spool import SUFFIX, frame

from ..server.harness import AppTransport
from .prediction_conformance import T0_MS, record


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(tmp_path / "store")
    opened.get_or_create_project("proj")
    yield opened
    opened.close()


def _dead_spool(store: Store, records: list[PredictionRecord], tail: bytes = b"") -> Path:
    """A spool file as a killed server leaves it (its lock went with the process)."""
    path = default_directory(store) / f"predictions-99999-deadbeef0000{SUFFIX}"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join(
        frame(struct.pack("<Q", seq) + _encode(r)) for seq, r in enumerate(records, start=1)
    )
    path.write_bytes(data + tail)
    return path


def _request_ids(store: Store, deployment: str = "churn") -> list[str]:
    ids: list[str] = read_predictions(store, "proj", deployment)["request_id"].tolist()
    return ids


# -- checking records -----------------------------------------------------------------------------
BAD_RECORDS = [
    ({"request_id": ""}, "request_id of 1-256 characters"),
    ({"request_id": 17}, "request_id of 1-256 characters"),
    ({"request_id": "x" * 257}, "request_id of 1-256 characters"),
    ({"request_id": "bad\ud800"}, "lone surrogates"),
    ({"project": "no spaces"}, "project name"),
    ({"deployment": ""}, "deployment name"),
    ({"model": None}, "model name"),
    ({"version": "1"}, "integer version"),
    ({"version": 0}, "version >= 1"),
    ({"version": True}, "integer version"),
    ({"timestamp_ms": 1.7e12}, "integer timestamp_ms"),
    ({"timestamp_ms": -1}, "timestamp_ms >= 0"),
    ({"latency_ms": "fast"}, "number latency_ms"),
    ({"latency_ms": math.nan}, "finite latency_ms"),
    ({"latency_ms": -0.5}, "finite latency_ms"),
    ({"inputs": [1, 2]}, "inputs as a dict"),
    ({"inputs": {1: "a"}}, "non-empty string names in inputs"),
    ({"inputs": {"": "a"}}, "non-empty string names in inputs"),
    ({"inputs": {"when": object()}}, r"inputs\['when'\] cannot be logged"),
    ({"outputs": {"predict": {1, 2}}}, r"outputs\['predict'\] cannot be logged"),
    ({"outputs": {"text": "\udcff"}}, r"outputs\['text'\] cannot be logged"),
    ({"shadow": 1}, "shadow True or False"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_RECORDS)
def test_bad_records_are_refused_with_what_to_fix(
    store: Store, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=message) as info:
        write_predictions(store, [record(0), record(1, **changes)])
    if "request_id" not in changes:
        assert "'req-1'" in str(info.value)  # the message names the prediction
    assert store.list_prediction_segments("proj") == []  # all or nothing


def test_records_must_come_in_a_list(store: Store) -> None:
    with pytest.raises(InvalidArgumentError, match=r"Pass one record as \[record\]"):
        PredictionSpool(store, durability="write").append(record(0))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="Expected PredictionRecord objects, got dict"):
        write_predictions(store, [{"request_id": "x"}])  # type: ignore[list-item]


def _batch_rows(records: list[PredictionRecord]) -> list[Any]:
    return [(r.request_id, r.timestamp_ms, r.latency_ms, r.inputs, r.outputs) for r in records]


def test_a_batch_encodes_the_records_append_would() -> None:
    """The model process's batch encoder: the same records back, NaN kept as NaN."""
    records = [
        record(0),
        record(1, inputs={"x": math.nan, "y": 1}, outputs={"predict_proba": [math.inf, 0.5]}),
        record(2, inputs={"big": 2**70, "text": "café ✓", "none": None, "flag": True}),
        record(3, inputs={"n": np.float64(0.5), "tags": ["a", "b"]}, latency_ms=0.0),
        record(4, outputs={"nested": [[0.1, math.nan]]}),
    ]
    shared = record(99, shadow=True)
    payloads = encode_batch(shared, _batch_rows(records))
    decoded = [decode_record(p) for p in payloads]
    expected = [dataclasses.replace(r, shadow=True) for r in records]
    for got, want in zip(decoded, expected, strict=True):
        assert got.inputs.keys() == want.inputs.keys()
        for key, value in want.inputs.items():
            assert got.inputs[key] == value or (
                value != value and got.inputs[key] != got.inputs[key]
            )
        assert dataclasses.replace(got, inputs={}, outputs={}) == dataclasses.replace(
            want, inputs={}, outputs={}
        )
    assert math.isnan(decoded[1].inputs["x"]) and decoded[1].outputs["predict_proba"][0] == math.inf
    assert math.isnan(decoded[4].outputs["nested"][0][1])
    assert decoded[0] == decode_record(_encode(expected[0]))  # as append encodes it


def test_a_batch_keeps_nan_inside_nested_values() -> None:
    nested = record(0, inputs={"meta": {"score": math.nan, "tags": [math.inf]}, "x": 1.0})
    (payload,) = encode_batch(record(99), _batch_rows([nested]))
    meta = decode_record(payload).inputs["meta"]
    assert math.isnan(meta["score"]) and meta["tags"] == [math.inf]


@pytest.mark.parametrize(("changes", "message"), BAD_RECORDS)
def test_a_batch_refuses_what_append_refuses(changes: dict[str, Any], message: str) -> None:
    bad = record(1, **changes)
    shared_fields = {"project", "deployment", "model", "version", "shadow"}
    if shared_fields & changes.keys():
        with pytest.raises(InvalidArgumentError, match=message):
            encode_batch(bad, _batch_rows([record(0)]))
    else:
        with pytest.raises(InvalidArgumentError, match=message):
            encode_batch(record(0), _batch_rows([record(0), bad]))


def test_decode_returns_what_was_encoded() -> None:
    original = record(3, inputs={"x": 1.25, "tags": ["a", "b"], "none": None})
    assert decode_record(_encode(original)) == original


# -- the spool, through the store -----------------------------------------------------------------
def test_spool_round_trip(store: Store) -> None:
    spool = PredictionSpool(store).open()
    try:

        async def serve() -> None:
            for i in range(20):
                await spool.durable(spool.append([record(i)]))

        asyncio.run(serve())
        assert spool.fsync_count >= 1
        assert _request_ids(store) == []  # not drained yet (every 2 s by default)
        spool.drain()
        assert _request_ids(store) == [f"req-{i}" for i in range(20)]
    finally:
        spool.close()
    assert _request_ids(store) == [f"req-{i}" for i in range(20)]  # closing added nothing twice
    assert list(default_directory(store).iterdir()) == []


def test_spool_through_a_remote_store(store: Store, tmp_path: Path) -> None:
    transport = AppTransport(create_app(store, auth=False))
    remote = RemoteStore("http://localhost", transport=transport, spool_dir=tmp_path / "s")
    remote.open()
    try:
        spool = PredictionSpool(remote, durability="write").open()
        spool.append([record(i) for i in range(5)])
        spool.close()
        assert _request_ids(remote) == [f"req-{i}" for i in range(5)]
    finally:
        remote.close()
    assert _request_ids(store) == [f"req-{i}" for i in range(5)]


def test_project_scoped_tokens_write_and_read_their_own_log(store: Store, tmp_path: Path) -> None:
    store.get_or_create_project("other")
    app = create_app(store)
    _, editor = store.create_token("editor", project="proj", name="server")
    _, viewer = store.create_token("viewer", project="proj", name="monitor")
    _, outsider = store.create_token("viewer", project="other", name="outsider")

    def remote(secret: str, name: str) -> RemoteStore:
        return RemoteStore(
            "http://loopwise.test", secret, transport=AppTransport(app), spool_dir=tmp_path / name
        ).open()

    writer, reader, stranger = remote(editor, "w"), remote(viewer, "r"), remote(outsider, "o")
    try:
        write_predictions(writer, [record(i) for i in range(3)])
        with pytest.raises(PermissionDeniedError):
            write_predictions(writer, [record(9, project="other")])
        assert _request_ids(reader) == ["req-0", "req-1", "req-2"]
        with pytest.raises(PermissionDeniedError):
            read_predictions(stranger, "proj", "churn")
    finally:
        for opened in (writer, reader, stranger):
            opened.close()


def test_opening_the_store_replays_a_dead_spool(tmp_path: Path, store: Store) -> None:
    path = _dead_spool(store, [record(i) for i in range(7)])
    again = open_store(tmp_path / "store")
    try:
        assert _request_ids(again) == [f"req-{i}" for i in range(7)]
        assert not path.exists()
    finally:
        again.close()


def test_a_refused_dead_spool_is_kept_without_stopping_the_store(
    tmp_path: Path, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    path = _dead_spool(store, [record(0, project="not-yet"), record(1, project="not-yet")])
    again = open_store(tmp_path / "store")  # opens, and says why the spool stays
    try:
        assert path.exists() and "'not-yet'" in caplog.text
        PredictionSpool(again, durability="write").open().close()
        assert path.exists()
        again.get_or_create_project("not-yet")
    finally:
        again.close()
    again = open_store(tmp_path / "store")
    try:
        frame_ = read_predictions(again, "not-yet", "churn")
        assert frame_["request_id"].tolist() == ["req-0", "req-1"]
        assert not path.exists()
    finally:
        again.close()


def test_torn_tail_is_ignored(tmp_path: Path, store: Store) -> None:
    torn = frame(struct.pack("<Q", 4) + _encode(record(3)))[:-5]
    _dead_spool(store, [record(i) for i in range(3)], tail=torn)
    PredictionSpool(store).open().close()
    assert _request_ids(store) == ["req-0", "req-1", "req-2"]


def test_crash_after_uploading_segments_before_indexing_them(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _dead_spool(store, [record(i) for i in range(5)])
    calls = []

    def crash(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise KeyboardInterrupt("killed between the Parquet upload and the index commit")

    with monkeypatch.context() as patch:
        patch.setattr(store, "add_prediction_segments", crash)
        with pytest.raises(KeyboardInterrupt):
            PredictionSpool(store).open()
    assert calls and _request_ids(store) == []
    PredictionSpool(store).open().close()  # the next start replays the whole file
    assert _request_ids(store) == [f"req-{i}" for i in range(5)]


def test_crash_after_indexing_before_deleting_the_file(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _dead_spool(store, [record(i) for i in range(5)])
    real_unlink = Path.unlink

    def crash_on_spool(self: Path, missing_ok: bool = False) -> None:
        if self == path:
            raise KeyboardInterrupt("killed between the index commit and deleting the file")
        real_unlink(self, missing_ok=missing_ok)

    with monkeypatch.context() as patch:
        patch.setattr(Path, "unlink", crash_on_spool)
        with pytest.raises(KeyboardInterrupt):
            PredictionSpool(store).open()
    assert path.exists() and _request_ids(store) == [f"req-{i}" for i in range(5)]
    PredictionSpool(store).open().close()  # the progress record says it is done
    assert _request_ids(store) == [f"req-{i}" for i in range(5)]
    assert not path.exists()


# -- a real SIGKILL under load --------------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from loopwise.store import open_store
    from loopwise.store.predictions import PredictionRecord, PredictionSpool

    store = open_store(sys.argv[1])
    store.get_or_create_project("proj")
    spool = PredictionSpool(store, drain_interval_s=0.05).open()

    async def client(k):
        i = k
        while True:
            seq = spool.append([PredictionRecord(
                project="proj", deployment="churn", request_id=f"req-{i}", model="churn",
                version=1, timestamp_ms=1_700_002_800_000 + i, latency_ms=1.0,
                inputs={"x": i, "y": i / 3}, outputs={"predict": i % 2},
            )])
            await spool.durable(seq)
            print(f"ack req-{i}", flush=True)  # the client got its response
            i += 32
            await asyncio.sleep(0)

    async def main():
        print("ready", flush=True)
        await asyncio.gather(*(client(k) for k in range(32)))

    asyncio.run(main())
    """
)


def _drained(folder: Path) -> bool:
    """Whether the child has moved predictions into the store yet (read beside it)."""
    conn = sqlite3.connect(f"file:{folder / 'loopwise.db'}?mode=ro", uri=True)
    try:
        return bool(conn.execute("SELECT count(*) FROM prediction_segments").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return False
    finally:
        conn.close()


def test_every_acknowledged_prediction_survives_sigkill_once(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    acknowledged: set[str] = set()
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        if child.stdout.readline() != "ready\n":
            child.kill()
            pytest.fail(f"the child did not start: {child.stderr.read()}")
        deadline = time.monotonic() + 60
        # Let it run past a drain, so it dies with records both drained and still spooled.
        while time.monotonic() < deadline and (len(acknowledged) < 3000 or not _drained(folder)):
            line = child.stdout.readline()
            if line.startswith("ack "):
                acknowledged.add(line.split()[1])
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
        acknowledged.update(line.split()[1] for line in child.stdout if line.startswith("ack "))
    assert len(acknowledged) >= 3000
    assert list((folder / "spool" / "predictions").glob(f"*{SUFFIX}"))  # left for replay

    store = open_store(folder)  # replays the dead spool
    try:
        logged = _request_ids(store)
        assert len(logged) == len(set(logged)), "a prediction was logged twice"
        assert acknowledged <= set(logged), sorted(acknowledged - set(logged))[:10]
        assert list(default_directory(store).glob(f"*{SUFFIX}")) == []
        assert len(store.list_prediction_segments("proj")) >= 2  # drained live, and replayed
    finally:
        store.close()


def test_records_keep_their_values(store: Store) -> None:
    spool = PredictionSpool(store, durability="write").open()
    spool.append([record(0, inputs={"x": math.nan, "s": "é"}, outputs={"p": [0.5, 0.5]})])
    spool.close()
    frame_ = read_predictions(store, "proj", "churn", T0_MS, T0_MS + 1)
    assert math.isnan(frame_["input.x"][0]) and frame_["input.s"][0] == "é"
    assert list(frame_["output.p"][0]) == [0.5, 0.5]


# -- shadow rows ----------------------------------------------------------------------------------
def test_shadow_rows_round_trip_through_the_spool(store: Store) -> None:
    original = record(0, shadow=True)
    assert decode_record(_encode(original)) == original and record(1).shadow is False
    spool = PredictionSpool(store, durability="write").open()
    spool.append([record(0), dataclasses.replace(original, version=2)])
    spool.close()
    frame_ = read_predictions(store, "proj", "churn")
    assert frame_["shadow"].dtype == bool
    assert frame_[["request_id", "version", "shadow"]].values.tolist() == [
        ["req-0", 1, False],
        ["req-0", 2, True],
    ]


def test_logs_written_before_shadow_rows_existed_read_back_as_live(
    tmp_path: Path, store: Store
) -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    # A segment as this release's predecessor wrote it: no shadow column.
    old = pa.table(
        {
            "request_id": ["old-0", "old-1"], "deployment": ["churn"] * 2, "model": ["churn"] * 2,
            "version": [1, 1], "timestamp_ms": [T0_MS, T0_MS + 1], "latency_ms": [1.0, 2.0],
            "input.age": [30, 31], "output.predict": [0, 1],
        }
    )  # fmt: skip
    buffer = io.BytesIO()
    pq.write_table(old, buffer)
    digest, size = store.artifacts.put_bytes(buffer.getvalue())
    store.add_prediction_segments(  # T0_MS starts an hour
        [PredictionSegment("proj", "churn", T0_MS, digest, 2, T0_MS, T0_MS + 1, size)], None, 0
    )
    # And a spool record from before: its JSON has no "shadow" field either.
    payload = _encode(record(2)).replace(b',"shadow":false', b"")
    assert b"shadow" not in payload and decode_record(payload).shadow is False
    path = default_directory(store) / f"predictions-99999-deadbeef0000{SUFFIX}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(frame(struct.pack("<Q", 1) + payload))
    write_predictions(store, [record(3, shadow=True)])
    PredictionSpool(store).open().close()  # replays the old spool
    frame_ = read_predictions(store, "proj", "churn")
    assert frame_[["request_id", "shadow"]].values.tolist() == [
        ["old-0", False],
        ["old-1", False],
        ["req-2", False],
        ["req-3", True],
    ]
    assert frame_["shadow"].dtype == bool
