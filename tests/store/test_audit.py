"""The SQL store's audit log under attack: rows edited, removed and reordered with plain SQL, on
SQLite and PostgreSQL; who is recorded; and appends from many threads and processes at once."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from loopwise.errors import StoreError
from loopwise.store import actor as actor_module
from loopwise.store import open_store
from loopwise.store.actor import Actor, acting_as, current_actor
from loopwise.store.audit import MAX_SHOWN_CHARS, is_unreadable
from loopwise.store.sql import SqlStore
from loopwise.store.sql import access as access_module
from loopwise.store.sql.schema import TOKENS

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        opened = open_store(tmp_path / "store")
    else:
        url = request.getfixturevalue("postgres").create_database()
        monkeypatch.setenv("LOOPWISE_ARTIFACTS", str(tmp_path / "artifacts"))
        opened = open_store(url)
    assert isinstance(opened, SqlStore)
    yield opened
    opened.close()


def tamper(store: SqlStore, *statements: str) -> None:
    """Change the database behind the store's back, as someone with SQL access could."""
    engine = create_engine(store.db_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


@pytest.fixture
def twelve(store: SqlStore) -> SqlStore:
    """A store whose audit log has 12 records."""
    store.get_or_create_project("proj")
    run = store.create_run("proj", "r")
    for i in range(10):
        store.set_tags(run.id, {"step": str(i)})
    assert [r.seq for r in store.audit_log()] == list(range(1, 13))
    assert store.verify_audit().ok
    return store


FIELD_EDITS = {
    "actor": "actor = 'eve'",
    "action": "action = 'run.end'",
    "project": "project = 'other'",
    "target": "target = 'run:forged'",
    "time_ms": "time_ms = time_ms + 1",
    "token_id": "token_id = 'tok_000000000000'",
    "before": """before = '{"step": "x"}'""",
    "after": """after = '{"step": "x"}'""",
    "prev_hash": "prev_hash = '" + "1" * 64 + "'",
    "hash": "hash = '" + "1" * 64 + "'",
}


@pytest.mark.parametrize("field", sorted(FIELD_EDITS))
def test_an_edited_record_is_named(twelve: SqlStore, field: str) -> None:
    tamper(twelve, f"UPDATE audit_log SET {FIELD_EDITS[field]} WHERE seq = 7")
    result = twelve.verify_audit()
    assert (result.ok, result.broken_seq, result.records) == (False, 7, 6)
    assert result.reason == "record 7 was edited: its content no longer matches its hash"


DEEP = '{"step": ' + "[" * 1000 + "]" * 1000 + "}"
MALFORMED = {
    "a repeated key": ("""'{"step": "x", "step": "3"}'""", "the key 'step' appears twice"),
    "deep nesting": (f"'{DEEP}'", "nested more than 64 levels deep"),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_a_record_edited_into_odd_json_is_named(twelve: SqlStore, kind: str) -> None:
    # A repeated key once parsed back to the original value and passed; now it is an edit.
    value, reason = MALFORMED[kind]
    tamper(twelve, f"UPDATE audit_log SET after = {value} WHERE seq = 7")
    result = twelve.verify_audit()
    assert (result.ok, result.broken_seq, result.records) == (False, 7, 6)
    assert (
        result.reason
        == f"record 7 was edited: its after is not JSON as Loopwise writes it ({reason})"
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("""'{"step": NaN}'""", "NaN is not JSON"),
        ("""'{"step": '""", "Expecting value"),
        ("'" + "[" * 100_000 + "'", "nested more than 64 levels deep"),
        ("'[1, 2]'", "a JSON list, not an object"),
    ],
)
def test_json_postgresql_would_refuse_is_named_on_sqlite(
    tmp_path: Path, value: str, reason: str
) -> None:
    store = open_store(tmp_path / "store")
    assert isinstance(store, SqlStore)
    try:
        store.get_or_create_project("proj")
        store.get_or_create_project("other")
        tamper(store, f"UPDATE audit_log SET before = {value} WHERE seq = 2")
        result = store.verify_audit()  # reports, never crashes
        assert (result.ok, result.broken_seq) == (False, 2)
        assert result.reason.startswith("record 2 was edited: its before is not JSON")
        assert reason in result.reason
    finally:
        store.close()


LISTED = {  # what either backend stores in a JSON column, but Loopwise never writes
    "a repeated key": ("""{"step": "x", "step": "3"}""", "the key 'step' appears twice"),
    "deep nesting": (DEEP, "nested more than 64 levels deep"),
    "a list": ("[1, 2]", "a JSON list, not an object"),
}


@pytest.mark.parametrize("kind", sorted(LISTED))
def test_a_record_edited_into_odd_json_is_still_listed(twelve: SqlStore, kind: str) -> None:
    text, reason = LISTED[kind]
    intact = twelve.audit_log()
    tamper(twelve, f"UPDATE audit_log SET after = '{text}' WHERE seq = 7")
    records = twelve.audit_log()  # never a crash
    assert [r.seq for r in records] == list(range(1, 13))
    edited = records[6]
    assert is_unreadable(edited.after) and not is_unreadable(edited.before)
    assert edited.after == {
        "unreadable": True,
        "reason": reason,
        "stored_text": text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "…",
    }
    assert edited.before == intact[6].before
    assert records[:6] + records[7:] == intact[:6] + intact[7:]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("""{"step": NaN}""", "NaN is not JSON"),
        ("""{"step": """, "Expecting value"),
        ("[" * 100_000, "nested more than 64 levels deep"),
        ('"text"', "a JSON str, not an object"),
    ],
)
def test_json_postgresql_would_refuse_is_still_listed_on_sqlite(
    tmp_path: Path, text: str, reason: str
) -> None:
    store = open_store(tmp_path / "store")
    assert isinstance(store, SqlStore)
    try:
        store.get_or_create_project("proj")
        store.get_or_create_project("other")
        tamper(store, f"UPDATE audit_log SET before = '{text}' WHERE seq = 2")
        listed = store.audit_log(after_seq=1)
        assert [r.seq for r in listed] == [2]
        shown = listed[0].before
        assert shown is not None
        assert is_unreadable(shown) and reason in shown["reason"]
        assert len(shown["stored_text"]) <= MAX_SHOWN_CHARS + 1
        assert shown["stored_text"].rstrip("…") == text[:MAX_SHOWN_CHARS]
    finally:
        store.close()


def test_a_tampered_record_is_listed_through_the_api(tmp_path: Path) -> None:
    """The server answers with the flagged text (before: a 500, NaN being no JSON), and the
    SDK in remote mode tells it apart from data."""
    from loopwise.server import create_app
    from loopwise.store.remote import RemoteStore

    from ..server.harness import AppTransport

    store = open_store(tmp_path / "store")
    assert isinstance(store, SqlStore)
    store.get_or_create_project("proj")
    secret = store.create_token("admin", name="admin")[1]
    tamper(store, """UPDATE audit_log SET before = '{"name": NaN}' WHERE seq = 2""")
    remote = RemoteStore(
        "http://loopwise.test",
        secret,
        transport=AppTransport(create_app(store)),
        spool_dir=tmp_path / "spool",
    ).open()
    try:
        listed = remote.audit_log()
        assert [r.seq for r in listed] == [1, 2]
        assert is_unreadable(listed[1].before) and not is_unreadable(listed[1].after)
        assert listed[1].before is not None
        assert listed[1].before["stored_text"] == '{"name": NaN}'
    finally:
        remote.close()
        store.close()


def test_a_removed_record_is_named(twelve: SqlStore) -> None:
    tamper(twelve, "DELETE FROM audit_log WHERE seq = 8")
    result = twelve.verify_audit()
    assert (result.ok, result.broken_seq) == (False, 8)
    assert result.reason == "record 8 is missing (removed)"


def test_a_removed_record_with_the_rest_renumbered_is_named(twelve: SqlStore) -> None:
    tamper(
        twelve,
        "DELETE FROM audit_log WHERE seq = 8",
        "UPDATE audit_log SET seq = -seq WHERE seq > 8",
        "UPDATE audit_log SET seq = -seq - 1 WHERE seq < 0",
        "UPDATE audit_head SET seq = seq - 1",
    )
    result = twelve.verify_audit()
    assert (result.ok, result.broken_seq) == (False, 8)
    assert result.reason.startswith("record 8 was removed and the records after renumbered")


def test_swapped_records_are_named(twelve: SqlStore) -> None:
    tamper(
        twelve,
        "UPDATE audit_log SET seq = -1 WHERE seq = 9",
        "UPDATE audit_log SET seq = 9 WHERE seq = 10",
        "UPDATE audit_log SET seq = 10 WHERE seq = -1",
    )
    result = twelve.verify_audit()
    assert (result.ok, result.broken_seq) == (False, 9)
    assert result.reason == "records 9 and 10 are out of order"


def test_removed_last_records_are_named(twelve: SqlStore) -> None:
    tamper(twelve, "DELETE FROM audit_log WHERE seq > 10")
    result = twelve.verify_audit()
    assert (result.ok, result.broken_seq, result.records) == (False, 11, 10)
    assert result.reason == "the last 2 records were removed (head says 12, log ends at 10)"


def test_an_edited_head_is_named(twelve: SqlStore) -> None:
    tamper(twelve, "UPDATE audit_head SET hash = '" + "e" * 64 + "'")
    result = twelve.verify_audit()
    assert (result.ok, result.broken_seq) == (False, 12)
    assert "head's hash does not match record 12" in result.reason


def test_a_missing_head_is_named_and_stops_writes(twelve: SqlStore) -> None:
    tamper(twelve, "DELETE FROM audit_head")
    result = twelve.verify_audit()
    assert not result.ok and "head row is missing" in result.reason
    # A change is committed with its record or not at all.
    with pytest.raises(StoreError, match="loopwise audit verify"):
        twelve.create_run("proj", "unrecorded")
    assert [r.name for r in twelve.search_runs("proj")] == ["r"]


def test_verify_reads_the_log_in_chunks(twelve: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access_module, "VERIFY_CHUNK", 5)
    assert twelve.verify_audit().records == 12
    tamper(twelve, "DELETE FROM audit_log WHERE seq = 11")
    assert twelve.verify_audit().reason == "record 11 is missing (removed)"


# -- who ------------------------------------------------------------------------------------------
def test_records_name_the_actor_and_token(store: SqlStore) -> None:
    with acting_as(Actor("token:ci", "tok_0123456789ab")) as actor:
        assert current_actor() == actor
        store.get_or_create_project("proj")
        token, _ = store.create_token("viewer")
    store.create_run("proj", "r")
    records = store.audit_log()
    assert [(r.actor, r.token_id) for r in records] == [
        ("token:ci", "tok_0123456789ab"),
        ("token:ci", "tok_0123456789ab"),
        (current_actor().name, None),
    ]
    assert token.created_by == "token:ci"


def test_the_default_actor_is_the_os_user(monkeypatch: pytest.MonkeyPatch) -> None:
    assert current_actor() == Actor(getpass.getuser())

    def no_user() -> str:
        raise OSError("no user")

    monkeypatch.setattr(getpass, "getuser", no_user)
    actor_module._os_user.cache_clear()
    try:
        assert current_actor() == Actor("unknown")
    finally:
        actor_module._os_user.cache_clear()


def test_the_actor_is_per_thread() -> None:
    seen: list[str] = []
    with acting_as(Actor("token:main")):
        thread = threading.Thread(target=lambda: seen.append(current_actor().name))
        thread.start()
        thread.join()
        assert current_actor().name == "token:main"
    assert seen == [getpass.getuser()]


def test_only_a_salted_hash_of_the_secret_is_stored(store: SqlStore) -> None:
    _, secret = store.create_token("admin")
    store.create_token("admin")
    with store.read_engine.connect() as conn:
        rows = conn.execute(select(TOKENS)).all()
    assert secret not in repr(rows) and secret.split("_", 2)[2] not in repr(rows)
    assert len({row.salt for row in rows}) == 2 and all(len(r.secret_hash) == 64 for r in rows)


# -- concurrency ------------------------------------------------------------------------------------
WORKER = textwrap.dedent(
    """
    import sys
    from loopwise.store import open_store

    uri, worker, changes = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = open_store(uri)
    run = store.create_run("conc", f"process-{worker}")
    for i in range(changes):
        store.set_tags(run.id, {"i": str(i)})
    store.close()
    """
)
THREADS, PROCESSES, CHANGES = 6, 3, 15


def test_concurrent_appends_make_one_chain(store: SqlStore, tmp_path: Path) -> None:
    store.get_or_create_project("conc")
    uri = store.uri
    env = {**os.environ}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, uri, str(w), str(CHANGES)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for w in range(PROCESSES)
    ]
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            with acting_as(Actor(f"thread-{worker}")):
                run = store.create_run("conc", f"thread-{worker}")
                for i in range(CHANGES):
                    store.set_tags(run.id, {"i": str(i)})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    assert errors == []

    expected = 1 + (THREADS + PROCESSES) * (1 + CHANGES)
    result = store.verify_audit()
    assert result.ok, result.reason
    assert result.records == expected
    records = store.audit_log()
    assert [r.seq for r in records] == list(range(1, expected + 1))
    per_thread = [sum(r.actor == f"thread-{w}" for r in records) for w in range(THREADS)]
    assert per_thread == [1 + CHANGES] * THREADS
