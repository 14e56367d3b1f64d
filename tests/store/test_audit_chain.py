"""The audit log's hash chain on its own: hashing, and what verify_chain says about each tampering."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, cast

import pytest

from loopwise.store.audit import (
    GENESIS_HASH,
    AuditHead,
    canonical_json,
    chain_hash,
    normalise,
    record_hash,
    verify_chain,
)
from loopwise.store.entities import AuditRecord


def make_chain(n: int) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        content: dict[str, Any] = {
            "seq": seq,
            "time_ms": 1_700_000_000_000 + seq,
            "actor": "ana",
            "token_id": None,
            "action": "alias.set",
            "project": "employment",
            "target": "model:employment@production",
            "before": None if seq == 1 else {"version": seq - 1},
            "after": {"version": seq},
        }
        digest = chain_hash(prev, content)
        records.append(AuditRecord(**content, prev_hash=prev, hash=digest))
        prev = digest
    return records


def head_of(records: list[AuditRecord]) -> AuditHead:
    return AuditHead(records[-1].seq, records[-1].hash) if records else AuditHead(0, GENESIS_HASH)


def check(records: list[AuditRecord], head: AuditHead | None) -> tuple[bool, int | None, str]:
    result = verify_chain(iter(records), head)
    return result.ok, result.broken_seq, result.reason


# -- hashing ------------------------------------------------------------------------------------
def test_canonical_json_has_one_spelling() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": None, "c": "é"}]}) == (
        '{"a":[1,{"c":"\\u00e9","d":null}],"b":1}'
    )
    assert canonical_json({"a": 1, "b": 2}) == canonical_json({"b": 2, "a": 1})
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_normalise_gives_what_the_database_gives_back() -> None:
    assert normalise(None) is None
    assert normalise({"files": ({"path": "a"},), "n": 1}) == {"files": [{"path": "a"}], "n": 1}


def test_hash_is_sha256_of_prev_hash_and_canonical_content() -> None:
    record = make_chain(1)[0]
    content = {f: getattr(record, f) for f in ("seq", "time_ms", "actor", "token_id", "action")}
    content |= {f: getattr(record, f) for f in ("project", "target", "before", "after")}
    expected = hashlib.sha256((GENESIS_HASH + canonical_json(content)).encode()).hexdigest()
    assert record.hash == record_hash(record) == expected


def test_every_field_is_covered_by_the_hash() -> None:
    record = make_chain(1)[0]
    changes: dict[str, Any] = {
        "seq": 2,
        "time_ms": record.time_ms + 1,
        "actor": "eve",
        "token_id": "tok_000000000000",
        "action": "alias.delete",
        "project": "other",
        "target": "model:employment@staging",
        "before": {"version": 0},
        "after": {"version": 9},
        "prev_hash": "1" * 64,
    }
    for name, value in changes.items():
        assert record_hash(dataclasses.replace(record, **{name: value})) != record.hash, name


# -- verifying ----------------------------------------------------------------------------------
def test_intact_chain() -> None:
    records = make_chain(12)
    result = verify_chain(records, head_of(records))
    assert (result.ok, result.records, result.head_hash, result.broken_seq) == (
        True,
        12,
        records[-1].hash,
        None,
    )
    assert result.reason == "chain intact: 12 records"


def test_empty_chain() -> None:
    result = verify_chain([], AuditHead(0, GENESIS_HASH))
    assert (result.ok, result.records, result.head_hash) == (True, 0, None)


def test_edited_record() -> None:
    records = make_chain(12)
    records[6] = dataclasses.replace(records[6], after={"version": 99})
    ok, broken, reason = check(records, head_of(make_chain(12)))
    assert (ok, broken) == (False, 7)
    assert reason == "record 7 was edited: its content no longer matches its hash"


def test_edited_hash_or_prev_hash() -> None:
    for field in ("hash", "prev_hash"):
        records = make_chain(12)
        records[6] = dataclasses.replace(records[6], **cast(dict[str, Any], {field: "f" * 64}))
        assert check(records, head_of(make_chain(12)))[:2] == (False, 7), field


def test_removed_record() -> None:
    records = make_chain(12)
    del records[7]
    assert check(records, head_of(make_chain(12))) == (
        False,
        8,
        "record 8 is missing (removed)",
    )


def test_removed_records() -> None:
    records = make_chain(12)
    del records[4:7]
    assert check(records, head_of(make_chain(12)))[1:] == (
        5,
        "records 5 to 7 are missing (removed)",
    )


@pytest.mark.parametrize(("first", "second"), [(9, 10), (3, 8)])
def test_swapped_records(first: int, second: int) -> None:
    records = make_chain(12)
    a, b = records[first - 1], records[second - 1]
    records[first - 1] = dataclasses.replace(b, seq=first)
    records[second - 1] = dataclasses.replace(a, seq=second)
    assert check(records, head_of(make_chain(12))) == (
        False,
        first,
        f"records {first} and {second} are out of order",
    )


def test_removed_record_with_the_rest_renumbered() -> None:
    original = make_chain(12)
    records = original[:7] + [dataclasses.replace(r, seq=r.seq - 1) for r in original[8:]]
    ok, broken, reason = check(records, AuditHead(11, original[-1].hash))
    assert (ok, broken) == (False, 8)
    assert reason.startswith("record 8 was removed and the records after renumbered")


def test_rewritten_record_breaks_the_next_link() -> None:
    records = make_chain(12)
    forged = dataclasses.replace(records[6], actor="eve")
    records[6] = dataclasses.replace(forged, hash=record_hash(forged))  # re-hashed, consistent
    ok, broken, reason = check(records, head_of(make_chain(12)))
    assert (ok, broken) == (False, 8)
    assert reason.startswith("record 8 does not follow record 7")


def test_removed_tail() -> None:
    records = make_chain(12)
    assert check(records[:10], head_of(records)) == (
        False,
        11,
        "the last 2 records were removed (head says 12, log ends at 10)",
    )
    assert check(records[:11], head_of(records))[2] == (
        "the last record was removed (head says 12, log ends at 11)"
    )


def test_head_rolled_back_or_edited() -> None:
    records = make_chain(12)
    ok, broken, reason = check(records, AuditHead(10, records[9].hash))
    assert (ok, broken) == (False, 11)
    assert "past the head" in reason
    ok, broken, reason = check(records, AuditHead(12, "e" * 64))
    assert (ok, broken) == (False, 12)
    assert "head's hash does not match record 12" in reason
    assert check([], AuditHead(0, "e" * 64))[0] is False


def test_missing_head() -> None:
    ok, broken, reason = check(make_chain(3), None)
    assert (ok, broken) == (False, None)
    assert "head row is missing" in reason


def test_a_chain_rewritten_with_its_head_needs_an_anchor() -> None:
    """The limit of a hash chain: rewrite everything consistently and only a kept hash tells."""
    original = make_chain(5)
    forged: list[AuditRecord] = []
    prev = GENESIS_HASH
    for record in original:
        content = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
        content.pop("hash")
        content.pop("prev_hash")
        content["actor"] = "eve"
        digest = chain_hash(prev, content)
        forged.append(AuditRecord(**content, prev_hash=prev, hash=digest))
        prev = digest
    result = verify_chain(forged, head_of(forged))
    assert result.ok
    assert result.head_hash != original[-1].hash  # an anchor kept elsewhere exposes it


def test_records_are_read_lazily() -> None:
    records = make_chain(3)
    seen: list[int] = []

    def stream() -> Any:
        for record in records:
            seen.append(record.seq)
            yield record

    assert verify_chain(stream(), head_of(records)).ok
    assert seen == [1, 2, 3]
