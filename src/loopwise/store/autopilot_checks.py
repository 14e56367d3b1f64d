# TEMPORARY re-exports (issue 17): delete once importers are moved
"""The checks moved to ``loopwise.store.checks`` (by area); this module only re-exports them."""

from loopwise.store.checks import (
    MAX_DECISION_JSON_BYTES,
    MAX_POLICY_CHARS,
    MAX_POLICY_VALUES,
    MAX_SUMMARY_CHARS,
    CheckedDecision,
    check_autopilot_decision,
    check_decision_page,
    check_expected_policy_revision,
    check_json_object,
    check_policy_text,
)

__all__ = [
    "MAX_DECISION_JSON_BYTES",
    "MAX_POLICY_CHARS",
    "MAX_POLICY_VALUES",
    "MAX_SUMMARY_CHARS",
    "CheckedDecision",
    "check_autopilot_decision",
    "check_decision_page",
    "check_expected_policy_revision",
    "check_json_object",
    "check_policy_text",
]
