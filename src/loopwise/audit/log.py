"""Reading and verifying the audit log of the current store (or of one given explicitly)."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta

from loopwise.errors import InvalidArgumentError
from loopwise.store import Store
from loopwise.store.entities import AuditRecord, AuditVerification

__all__ = ["audit_log", "parse_since", "verify"]

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_HASH = re.compile(r"^[0-9a-f]{64}$")
PAGE = 10_000

Since = datetime | timedelta | str | int | None


def parse_since(since: Since, now_ms: int | None = None) -> int | None:
    """Milliseconds since the epoch from a datetime, a timedelta back from now, epoch
    milliseconds, or text: ``2026-01-01``, ``2026-01-01T09:30`` (local time unless it names a
    zone) or a duration back from now such as ``30m``, ``1h``, ``7d``."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if since is None:
        return None
    if isinstance(since, bool):
        pass  # a bool is an int to Python, never a time to a user
    elif isinstance(since, int):
        return since
    elif isinstance(since, datetime):
        return int(since.timestamp() * 1000)
    elif isinstance(since, timedelta):
        return now_ms - int(since.total_seconds() * 1000)
    elif isinstance(since, str):
        duration = _DURATION.match(since)
        if duration:
            return now_ms - int(duration.group(1)) * _UNIT_S[duration.group(2)] * 1000
        try:
            return int(datetime.fromisoformat(since.strip()).timestamp() * 1000)
        except ValueError:
            pass
    raise InvalidArgumentError(
        f"Expected since as a date (2026-01-01), a date and time (2026-01-01T09:30) or a "
        f"duration back from now (30m, 1h, 7d); got {since!r}.",
        parameter="since",
    )


def _store(store: Store | None) -> Store:
    if store is not None:
        return store
    from loopwise.context import current

    return current().store


def audit_log(
    since: Since = None, *, after_seq: int = 0, limit: int = 1000, store: Store | None = None
) -> list[AuditRecord]:
    """Records of changes, oldest first: those after record ``after_seq`` and not older than
    ``since`` (see :func:`parse_since`), at most ``limit``. Page on with the last ``seq``."""
    return _store(store).audit_log(since_ms=parse_since(since), after_seq=after_seq, limit=limit)


def verify(anchor: str | None = None, *, store: Store | None = None) -> AuditVerification:
    """Walk the hash chain and say whether, and where, the log was tampered with.

    ``anchor`` is a head hash kept from an earlier verification: the log must still contain it.
    That catches what the chain alone cannot, a log rewritten as a whole together with its head.
    """
    if anchor is not None and not _HASH.match(anchor):
        raise InvalidArgumentError(
            f"Expected the anchor as the 64-character hex head hash an earlier verification "
            f"printed, got {anchor!r}.",
            parameter="anchor",
        )
    store = _store(store)
    result = store.verify_audit()
    if anchor is None or not result.ok:
        return result
    after = 0
    while page := store.audit_log(after_seq=after, limit=PAGE):
        for record in page:
            if record.hash == anchor:
                return AuditVerification(
                    True,
                    result.records,
                    result.head_hash,
                    None,
                    f"{result.reason}, anchored at record {record.seq}",
                )
        after = page[-1].seq
    return AuditVerification(
        False,
        result.records,
        result.head_hash,
        None,
        f"the anchor {anchor[:12]}… is not in the log: the log was rewritten after that hash "
        "was taken, or the anchor comes from another store",
    )
