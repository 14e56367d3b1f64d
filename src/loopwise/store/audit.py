"""The audit log's hash chain, without any storage: how a record is hashed and how a chain is checked.

Each record's hash is ``sha256(prev_hash + canonical JSON of its content)``, where the content is
every field but the two hashes and the JSON has sorted keys and no whitespace. Changing, removing
or reordering a record therefore breaks the chain at that record; :func:`verify_chain` finds the
first break and says in plain words what happened there.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from loopwise.store.checks import MAX_JSON_DEPTH  # one bound on stored JSON
from loopwise.store.entities import AuditRecord, AuditVerification

__all__ = [
    "CONTENT_FIELDS",
    "GENESIS_HASH",
    "MAX_JSON_DEPTH",
    "MAX_SHOWN_CHARS",
    "AuditHead",
    "UnreadableJson",
    "canonical_json",
    "chain_hash",
    "is_unreadable",
    "normalise",
    "parse_stored_json",
    "record_hash",
    "verify_chain",
]

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of record 1 (and the head's hash while the log is empty)."""
CONTENT_FIELDS = (
    "seq",
    "time_ms",
    "actor",
    "token_id",
    "action",
    "project",
    "target",
    "before",
    "after",
)
SEARCH_WINDOW = 1000
"""How far from its place a misplaced record is looked for, to tell reordering from editing."""


class AuditHead(NamedTuple):
    """The log's head: the last record's ``seq`` and ``hash`` as the store last wrote them."""

    seq: int
    hash: str


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no whitespace, ASCII only, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


MAX_SHOWN_CHARS = 500
"""How much of an unreadable ``before``/``after``'s stored text a listing shows."""


class UnreadableJson(dict[str, Any]):
    """Stands for a stored ``before``/``after`` whose text is not JSON as Loopwise writes it
    (invalid, NaN, a repeated key, nested too deeply, not an object): someone edited it outside
    Loopwise. Verifying names the record; listing shows it, as
    ``{"unreadable": True, "reason": …, "stored_text": …}`` with the text cut to
    :data:`MAX_SHOWN_CHARS` (and ``…``), so that the edit can be seen but not mistaken for data."""

    def __init__(self, reason: str, text: str = "") -> None:
        cut = text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "…"
        super().__init__(unreadable=True, reason=reason, stored_text=cut)
        self.reason = reason


def is_unreadable(value: object) -> bool:
    """Whether a record's ``before``/``after`` stands for stored text that was not readable
    (:class:`UnreadableJson`, or its JSON form as the REST API returns it)."""
    return isinstance(value, UnreadableJson) or (
        isinstance(value, dict)
        and value.get("unreadable") is True
        and set(value) == {"unreadable", "reason", "stored_text"}
    )


def _depth(text: str) -> int:
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return 0  # cannot be deeper: skip the scan
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            escaped = not escaped and ch == "\\"
            in_string = escaped or ch != '"'
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key[:50]!r} appears twice")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_stored_json(text: str | None) -> dict[str, Any] | None:
    """A stored ``before``/``after`` as the verifier and a listing must see it: the JSON text
    parsed strictly, or an :class:`UnreadableJson` saying why it cannot be (never an
    exception)."""
    if text is None:
        return None
    if _depth(text) > MAX_JSON_DEPTH:
        return UnreadableJson(f"nested more than {MAX_JSON_DEPTH} levels deep", text)
    try:
        value = json.loads(text, object_pairs_hook=_no_repeated_keys, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        return UnreadableJson(str(exc)[:200], text)
    if value is None:
        return None
    if not isinstance(value, dict):
        return UnreadableJson(f"a JSON {type(value).__name__}, not an object", text)
    return value


def normalise(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``before``/``after`` as the database gives them back (tuples become lists, keys strings),
    so that what is hashed when appending is exactly what is read when verifying."""
    return None if value is None else dict(json.loads(canonical_json(value)))


def chain_hash(prev_hash: str, content: Mapping[str, Any]) -> str:
    """The hash of a record with ``content`` (its :data:`CONTENT_FIELDS`) following ``prev_hash``."""
    return hashlib.sha256((prev_hash + canonical_json(content)).encode()).hexdigest()


def _content(record: AuditRecord, seq: int | None = None) -> dict[str, Any]:
    content = {name: getattr(record, name) for name in CONTENT_FIELDS}
    if seq is not None:
        content["seq"] = seq
    return content


def record_hash(record: AuditRecord) -> str:
    """What ``record.hash`` must be, given its content and its ``prev_hash``."""
    return chain_hash(record.prev_hash, _content(record))


def _hashed_as(record: AuditRecord, position: int) -> int | None:
    """The ``seq`` the record was hashed with when that is not its own (it was moved)."""
    low = max(1, position - SEARCH_WINDOW)
    for seq in range(low, position + SEARCH_WINDOW + 1):
        if seq != record.seq and chain_hash(record.prev_hash, _content(record, seq)) == record.hash:
            return seq
    return None


def _records(first: int, last: int) -> str:
    return f"record {first}" if first == last else f"records {first} to {last}"


def _diagnose(
    record: AuditRecord, position: int, prev_hash: str, rest: Iterator[AuditRecord]
) -> tuple[int, str]:
    """``(broken_seq, reason)`` for the first record that does not continue the chain."""
    if record.seq > position:
        verb = "is" if record.seq - 1 == position else "are"
        return position, f"{_records(position, record.seq - 1)} {verb} missing (removed)"
    if record.seq < position:  # only possible where seq is not unique
        return record.seq, f"record {record.seq} appears twice"
    if record_hash(record) == record.hash:
        if position == 1:
            return 1, "record 1 does not start the chain: its prev_hash is not the genesis hash"
        return position, (
            f"record {position} does not follow record {position - 1}: its prev_hash is not "
            f"record {position - 1}'s hash (record {position - 1} was replaced, or records "
            "between them were removed)"
        )
    moved_from = _hashed_as(record, position)
    if moved_from is None:
        return position, f"record {position} was edited: its content no longer matches its hash"
    if moved_from > position:
        for other in itertools.islice(rest, moved_from - position):
            if other.seq == moved_from:
                if chain_hash(other.prev_hash, _content(other, position)) == other.hash:
                    return position, f"records {position} and {moved_from} are out of order"
                break
        if record.prev_hash != prev_hash:
            return position, (
                f"{_records(position, moved_from - 1)} "
                f"{'was' if moved_from - 1 == position else 'were'} removed and the records "
                f"after renumbered: record {position} was written as record {moved_from}"
            )
    return position, (f"record {position} is out of order: it was written as record {moved_from}")


def verify_chain(records: Iterable[AuditRecord], head: AuditHead | None) -> AuditVerification:
    """Walk ``records`` (in ``seq`` order, read lazily) and compare the end with ``head``.

    Detects an edited record (any field), records removed from the middle or the end,
    reordered records, and a head that does not match the log. It cannot detect a chain that
    was rewritten as a whole together with its head: anchor it by keeping ``head_hash``.
    """
    checked = 0
    position = 1
    prev_hash = GENESIS_HASH
    head_hash = head.hash if head is not None and head.seq > 0 else None
    rest = iter(records)
    for record in rest:
        for name in ("before", "after"):
            value = getattr(record, name)
            if isinstance(value, UnreadableJson):
                return AuditVerification(
                    False,
                    checked,
                    head_hash,
                    record.seq,
                    f"record {record.seq} was edited: its {name} is not JSON as Loopwise writes "
                    f"it ({value.reason})",
                )
        if (
            record.seq != position
            or record.prev_hash != prev_hash
            or record_hash(record) != record.hash
        ):
            broken, reason = _diagnose(record, position, prev_hash, rest)
            return AuditVerification(False, checked, head_hash, broken, reason)
        checked += 1
        position += 1
        prev_hash = record.hash
    last = checked
    if head is None:
        return AuditVerification(
            False, checked, None, None, "the audit head row is missing (it was deleted)"
        )
    if head.seq > last:
        missing = head.seq - last
        what = "record was" if missing == 1 else f"{missing} records were"
        return AuditVerification(
            False,
            checked,
            head_hash,
            last + 1,
            f"the last {what} removed (head says {head.seq}, log ends at {last})",
        )
    if head.seq < last:
        return AuditVerification(
            False,
            checked,
            head_hash,
            head.seq + 1,
            f"{_records(head.seq + 1, last)} lie past the head (head says {head.seq}, log ends "
            f"at {last}): the head was rolled back or records were added outside Loopwise",
        )
    if head.hash != prev_hash:
        return AuditVerification(
            False,
            checked,
            head_hash,
            last or None,
            f"the head's hash does not match record {last}'s: the head was edited or record "
            f"{last} was replaced"
            if last
            else "the head's hash is not the genesis hash of an empty log: the head was edited",
        )
    plural = "record" if last == 1 else "records"
    return AuditVerification(True, checked, head_hash, None, f"chain intact: {last} {plural}")
