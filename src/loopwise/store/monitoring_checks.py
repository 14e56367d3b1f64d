# TEMPORARY re-exports (issue 17): delete once importers are moved
"""The checks moved to ``loopwise.store.checks`` (by area); this module only re-exports them."""

from loopwise.store.checks import (
    ALERT_STATUSES,
    MAX_ALERT_LIMIT,
    MAX_DETAILS_CHARS,
    MAX_FINGERPRINT_CHARS,
    MAX_OUTCOME_CHARS,
    MAX_REQUEST_ID_CHARS,
    SEVERITIES,
    CheckedOutcome,
    check_alert,
    check_alert_id,
    check_alert_query,
    check_outcome_value,
    check_outcomes,
    check_overwrite,
    check_request_id,
    check_request_ids,
    dump_value,
)

__all__ = [
    "ALERT_STATUSES",
    "MAX_ALERT_LIMIT",
    "MAX_DETAILS_CHARS",
    "MAX_FINGERPRINT_CHARS",
    "MAX_OUTCOME_CHARS",
    "MAX_REQUEST_ID_CHARS",
    "SEVERITIES",
    "CheckedOutcome",
    "check_alert",
    "check_alert_id",
    "check_alert_query",
    "check_outcome_value",
    "check_outcomes",
    "check_overwrite",
    "check_request_id",
    "check_request_ids",
    "dump_value",
]
