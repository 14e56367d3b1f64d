"""Checks of the prediction log: the segments a writer describes, by the hour."""

from __future__ import annotations

from loopwise.store.artifacts import check_digest
from loopwise.store.checks.constraints import refusal
from loopwise.store.checks.names import check_name
from loopwise.store.checks.values import check_epoch_ms, check_int
from loopwise.store.entities import PredictionSegment

__all__ = ["HOUR_MS", "check_prediction_segment"]

HOUR_MS = 3_600_000


def check_prediction_segment(segment: PredictionSegment) -> PredictionSegment:
    """A prediction-log segment as a writer describes it: names, digest, hour and row counts."""
    if not isinstance(segment, PredictionSegment):
        raise refusal("a PredictionSegment", type(segment).__name__, parameter="segments")
    check_name(segment.project, "project")
    check_name(segment.deployment, "deployment")
    if not isinstance(segment.digest, str):
        raise refusal(
            "a digest of the form 'sha256:<64 hex digits>'",
            repr(segment.digest),
            parameter="digest",
        )
    check_digest(segment.digest)
    hour = check_epoch_ms(segment.hour_ms, "hour_ms")
    if hour % HOUR_MS:
        raise refusal(
            f"hour_ms at the start of an hour (a multiple of {HOUR_MS})",
            f"{hour}; that hour starts at {hour - hour % HOUR_MS}",
            parameter="hour_ms",
        )
    low = check_epoch_ms(segment.min_timestamp_ms, "min_timestamp_ms")
    high = check_epoch_ms(segment.max_timestamp_ms, "max_timestamp_ms")
    if not hour <= low <= high < hour + HOUR_MS:
        raise refusal(
            f"hour_ms <= min_timestamp_ms <= max_timestamp_ms < hour_ms + {HOUR_MS} (one hour)",
            f"{hour}, {low}, {high}",
            "Split the rows by hour.",
            parameter="min_timestamp_ms",
        )
    num_rows = check_int(segment.num_rows, "num_rows", low=1)
    size_bytes = check_int(segment.size_bytes, "size_bytes", low=1)
    return PredictionSegment(
        segment.project,
        segment.deployment,
        hour,
        segment.digest,
        num_rows,
        low,
        high,
        size_bytes,
        segment.created_ms,
    )
