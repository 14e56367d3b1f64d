# TEMPORARY re-exports (issue 17): delete once importers are moved
"""Moved to ``loopwise.monitoring.report.html``; kept for importers not yet moved."""

from loopwise.monitoring.report.html import CSS, Charts, esc, table, utc_text

__all__ = ["CSS", "Charts", "esc", "table", "utc_text"]
